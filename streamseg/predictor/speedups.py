"""Optional CPU inference speed-ups, chosen by ``model.cpu_speedups`` so that ``bench model`` and
``eval`` measure each one's frame rate and accuracy with the same switch a deployment uses.

- ``int8``: dynamic int8 quantisation of every Linear layer (weights int8, activations quantised
  per batch); the convolutions stay fp32. CPU only.
- ``compile``: ``torch.compile`` of the pixel decoder and the masked decoder (the backbone runs
  its batch-norm-folded copy already); the first frames of each input size pay the compile.
- ``no_channels_last``: the backbone in the default contiguous layout, to measure what
  channels_last (the default) gives.
"""
from __future__ import annotations

from typing import Any

SPEEDUPS = ("int8", "compile", "no_channels_last")


def check_speedups(names: list[str]) -> None:
    from streamseg.errors import ConfigError

    unknown = [n for n in names if n not in SPEEDUPS]
    if unknown:
        raise ConfigError(f"model.cpu_speedups: unknown {', '.join(unknown)} (choose from {', '.join(SPEEDUPS)})")


def apply_speedups(model: Any, names: list[str], device: Any) -> Any:
    """The model with the named speed-ups applied (in place where torch allows); eval mode."""
    import torch
    from torch import nn

    check_speedups(list(names))
    if "no_channels_last" in names:
        model.backbone.to(memory_format=torch.contiguous_format)
    if "int8" in names:
        from streamseg.errors import ConfigError

        if torch.device(device).type != "cpu":
            raise ConfigError("model.cpu_speedups int8 runs on the CPU only (use --device cpu)")
        from torch.ao.quantization import quantize_dynamic

        for name in ("pixel_decoder", "decoder", "tcm", "tim", "target_encoder", "classifier"):
            sub = getattr(model, name, None)
            if isinstance(sub, nn.Module):
                setattr(model, name, quantize_dynamic(sub, {nn.Linear}, dtype=torch.qint8))
    if "compile" in names:
        model.pixel_decoder = torch.compile(model.pixel_decoder, dynamic=False)
        model.decoder = torch.compile(model.decoder, dynamic=False)
    return model
