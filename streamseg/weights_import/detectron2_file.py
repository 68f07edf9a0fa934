"""Read a detectron2 checkpoint file into a flat {name: tensor} dict, running no code from it.

``.pkl`` (the model zoos' format: a pickled dict, usually ``{"model": {name: ndarray}, ...}``)
goes through the restricted unpickler; ``.pth`` (``torch.save`` of ``{"model": state_dict,
...}``, e.g. MinVIS's releases) through ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamseg.errors import CheckpointError
from streamseg.weights_import.safe_pickle import load_numpy_pickle

SUFFIXES = (".pkl", ".pth", ".pt")


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is not a folder (transformers) nor a file (detectron2 .pkl/.pth)")
    if path.suffix not in SUFFIXES:
        raise CheckpointError(f"{path}: expected a detectron2 checkpoint (.pkl or .pth) or a "
                              "transformers folder")
    if path.suffix == ".pkl":
        data = load_numpy_pickle(path)
    else:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # weights_only refusals and corrupt archives alike
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            raise CheckpointError(f"{path} is not loadable with weights_only=True "
                                  f"({type(exc).__name__}: {first})") from None
    return _state_dict(data, path)


def _state_dict(data: Any, path: Path) -> dict[str, torch.Tensor]:
    """The model's tensors: under "model" when the file is a detectron2 Checkpointer dict."""
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not data:
        raise CheckpointError(f"{path}: no state dict in the file (expected {{'model': {{name: array}}}})")
    out: dict[str, torch.Tensor] = {}
    for key, value in data.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
            out[str(key)] = torch.from_numpy(np.ascontiguousarray(value))
        elif isinstance(value, torch.Tensor):
            out[str(key)] = value
        else:
            raise CheckpointError(f"{path}: {key} is a {type(value).__name__}, not an array")
    if all(k.startswith("module.") for k in out):  # saved from a DistributedDataParallel wrapper
        out = {k[len("module."):]: v for k, v in out.items()}
    return out
