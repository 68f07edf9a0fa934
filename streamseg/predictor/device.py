"""``--device auto|cpu|cuda[:N]``: one rule for run, eval and bench, checked before a model is built."""
from __future__ import annotations

import re
from typing import Any

from streamseg.errors import ConfigError

DEVICE_HELP = "auto (CUDA when available), cpu, cuda or cuda:N (default auto)"


def resolve_device(spec: str | None) -> Any:
    """The torch.device a spec names; a CUDA device this machine lacks is a one-line error."""
    import torch  # here, so that importing this module (every --help) stays torch-free

    text = (spec or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", text)
    if m is None:
        raise ConfigError(f"--device {spec!r}: expected auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {spec}: this machine has no CUDA device (use --device cpu)")
    index = int(m.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here")
    return torch.device("cuda", index)


def inference_threads(configured: int) -> int:
    """torch intra-op threads for inference: ``configured`` if set, else half the usable cores
    (at least 1). A full set of OpenMP threads collapses when anything else wants a core (the
    decode thread, a second stream, another process): measured here, `streamseg eval` with 2
    threads on 2 busy cores did not finish in 15 minutes, with 1 it took 3."""
    import os

    if configured > 0:
        return configured
    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // 2)
