"""Optional CPU inference speed-ups, chosen by ``model.cpu_speedups`` so that ``bench model`` and
``eval`` measure each one's frame rate and accuracy with the same switch a deployment uses.

- ``int8``: dynamic int8 quantisation of every Linear layer (weights int8, activations quantised
  per batch); the convolutions stay fp32. CPU only.
- ``compile``: ``torch.compile`` of the pixel decoder and the masked decoder (the backbone runs
  its batch-norm-folded copy already); the first frames of each input size pay the compile.
  With ``onnx``, of the masked decoder only.
- ``no_channels_last``: the backbone in the default contiguous layout, to measure what
  channels_last (the default) gives.
- ``onnx``: the backbone and the pixel decoder run as one ONNX Runtime graph (exported at
  start-up or read from the cache, ``onnx_features``). CPU only; needs onnxruntime.
- ``onnx_decoder``: the masked decoder's inference pass as an ONNX Runtime graph
  (``onnx_decoder``); the query memory, TCM and the tracker stay PyTorch. CPU only.
"""
from __future__ import annotations

import sys
from typing import Any

SPEEDUPS = ("int8", "compile", "no_channels_last", "onnx", "onnx_decoder")
CPU_ONLY = ("int8", "onnx", "onnx_decoder")  # left out on a GPU


def check_speedups(names: list[str]) -> None:
    from streamseg.errors import ConfigError

    unknown = [n for n in names if n not in SPEEDUPS]
    if unknown:
        raise ConfigError(f"model.cpu_speedups: unknown {', '.join(unknown)} (choose from {', '.join(SPEEDUPS)})")
    if "onnx" in names and "no_channels_last" in names:
        raise ConfigError("model.cpu_speedups: onnx replaces the eager backbone, so it does not combine "
                          "with no_channels_last")
    clash = [n for n in ("int8", "compile") if n in names]
    if "onnx_decoder" in names and clash:
        raise ConfigError(f"model.cpu_speedups: onnx_decoder replaces the eager decoder, so it does not combine "
                          f"with {' or '.join(clash)}")


def apply_speedups(model: Any, names: list[str], device: Any) -> Any:
    """The model with the named speed-ups applied (in place where torch allows); eval mode."""
    import torch
    from torch import nn

    check_speedups(list(names))
    if "no_channels_last" in names:
        model.backbone.to(memory_format=torch.contiguous_format)
    cpu_only = [n for n in names if n in CPU_ONLY]
    if cpu_only and torch.device(device).type != "cpu":
        # (the shipped CPU config turns onnx on): a GPU runs those parts eagerly
        print(f"streamseg: note: model.cpu_speedups {','.join(cpu_only)} left out on {device} (CPU only)",
              file=sys.stderr, flush=True)
        names = [n for n in names if n not in CPU_ONLY]
    if "onnx" in names:
        from streamseg.predictor.onnx_features import to_onnx_runtime

        to_onnx_runtime(model)  # before int8: the export needs the float pixel decoder
    if "onnx_decoder" in names:
        from streamseg.predictor.onnx_decoder import to_onnx_decoder

        to_onnx_decoder(model)
    if "int8" in names:
        from torch.ao.quantization import quantize_dynamic

        for name in ("pixel_decoder", "decoder", "tcm", "tim", "target_encoder", "classifier"):
            sub = getattr(model, name, None)
            if isinstance(sub, nn.Module):
                setattr(model, name, quantize_dynamic(sub, {nn.Linear}, dtype=torch.qint8))
    if "compile" in names:
        if "onnx" not in names:  # (with onnx, ONNX Runtime runs the pixel decoder)
            model.pixel_decoder = torch.compile(model.pixel_decoder, dynamic=False)
        model.decoder = torch.compile(model.decoder, dynamic=False)
    return model
