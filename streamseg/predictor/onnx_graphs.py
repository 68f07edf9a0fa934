"""Exporting a module to ONNX once and running it in ONNX Runtime: what the ``onnx`` and
``onnx_decoder`` CPU speed-ups share.

An export costs about a second, so graphs are kept in ``$STREAMSEG_CACHE/onnx/`` under a hash of
the module's weights, the graph's format and the torch version (the least recently used dropped
beyond ``CACHE_KEEP``); a cache that cannot be written costs only the time.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from streamseg.cache import cache_root
from streamseg.errors import ConfigError

OPSET = 17
CACHE_KEEP = 8  # graphs kept: each distinct set of weights makes one


def cached_graph(module: nn.Module, fmt: str, args: tuple[torch.Tensor, ...], input_names: list[str],
                 output_names: list[str], dynamic_axes: dict[str, dict[int, str]]) -> bytes:
    """The ONNX graph of ``module`` traced on ``args``, from the cache when its key is there."""
    path = cache_dir() / f"{graph_key(module, fmt)}.onnx"
    graph = _load(path)
    if graph is None:
        graph = export(module, args, input_names, output_names, dynamic_axes)
        _store(path, graph)
    return graph


def session(graph: bytes) -> Any:
    """An ONNX Runtime CPU session on the inference threads (set before the build)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ConfigError("model.cpu_speedups onnx needs onnxruntime (pip install onnxruntime onnx)") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    # no busy-waiting pool threads: they would take the core the decode thread needs (measured:
    # two spinning threads halved the engine's frame rate on 2 cores)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def cache_dir() -> Path:
    return cache_root() / "onnx"


def graph_key(module: nn.Module, fmt: str) -> str:
    """What an exported graph depends on: every weight and buffer, the format, torch."""
    h = hashlib.sha256(f"{fmt}|torch {torch.__version__}|opset {OPSET}".encode())
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def export(module: nn.Module, args: tuple[torch.Tensor, ...], input_names: list[str],
           output_names: list[str], dynamic_axes: dict[str, dict[int, str]]) -> bytes:
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        # (torch's stubs name paths only; the exporter writes to any binary file object)
        torch.onnx.export(module.eval(), args, buf,  # type: ignore[arg-type]
                          dynamo=False, input_names=input_names, output_names=output_names,
                          opset_version=OPSET, dynamic_axes=dynamic_axes)
    return buf.getvalue()


def _load(path: Path) -> bytes | None:
    try:
        graph = path.read_bytes()
        os.utime(path)  # recently used
        return graph
    except OSError:
        return None


def _store(path: Path, graph: bytes) -> None:
    """Write atomically (concurrent processes may export the same graph); failures are not errors."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(graph)
        os.replace(tmp, path)
        graphs = sorted(path.parent.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in graphs[CACHE_KEEP:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass
