"""``streamseg weights average``: the mean of checkpoints of one model (a model soup / SWA).

Checkpoints along one training path (successive fine-tunes of the same weights) lie in one basin
of the loss; their mean usually scores at least as well as the best of them and smooths the noise
of each one's last steps (Wortsman et al., "Model soups", 2022; Izmailov et al., SWA, 2018).
Averaging weights of unrelated runs does not work, so the inputs must share every tensor's name and
shape and the vocabulary; the first one's config goes with the result.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from streamseg.errors import CheckpointError
from streamseg.predictor.checkpoint import inference_part, load_checkpoint
from streamseg.torch_files import save_atomic


def average_checkpoints(sources: list[str | Path], dst: str | Path) -> int:
    """Write the element-wise mean of the floating-point tensors of ``sources`` (integer tensors,
    e.g. BatchNorm's step counters, come from the first) to ``dst``, without resume state; returns
    the number of tensors averaged."""
    import torch

    if len(sources) < 2:
        raise CheckpointError("weights average needs at least two checkpoints")
    datas = [load_checkpoint(s) for s in sources]
    first, first_path = datas[0], sources[0]
    names = first["vocabulary"]
    for data, path in zip(datas[1:], sources[1:]):
        _check_same_model(first["state_dict"], data["state_dict"], first_path, path)
        other = data["vocabulary"]
        if list(other["names"]) != list(names["names"]) or other["encoder_id"] != names["encoder_id"] \
                or not _same_embeddings(other["embeddings"], names["embeddings"]):
            raise CheckpointError(f"checkpoints {first_path} and {path} have different vocabularies: "
                                  "averaging needs the same classes and text embeddings")
    state: dict[str, Any] = {}
    averaged = 0
    for key, value in first["state_dict"].items():
        if value.is_floating_point():
            total = torch.zeros_like(value, dtype=torch.float64)
            for data, path in zip(datas, sources):
                part = data["state_dict"][key].double()
                if not torch.isfinite(part).all():
                    raise CheckpointError(f"checkpoint {path}: {key} holds non-finite values")
                total += part
            state[key] = (total / len(datas)).to(value.dtype)
            averaged += 1
        else:
            state[key] = value.clone()
    out = {**inference_part(first), "state_dict": state}
    save_atomic(out, dst)
    return averaged


def _same_embeddings(a, b) -> bool:
    """The same text embeddings up to float rounding: each training run re-encodes the class names,
    and the encoder's sums land a few 1e-8 apart from run to run (seen: 1.5e-8)."""
    import torch

    return a.shape == b.shape and bool(torch.allclose(a.float(), b.float(), rtol=0.0, atol=1e-6))


def _check_same_model(a: dict[str, Any], b: dict[str, Any], path_a: str | Path, path_b: str | Path) -> None:
    only = sorted(set(a) ^ set(b))
    if only:
        raise CheckpointError(f"checkpoints {path_a} and {path_b} hold different tensors ({len(only)} "
                              f"names in one only, e.g. {only[0]}): not one model")
    for key in a:
        if tuple(a[key].shape) != tuple(b[key].shape) or a[key].dtype != b[key].dtype:
            raise CheckpointError(f"checkpoints {path_a} and {path_b} differ in {key}: "
                                  f"{tuple(a[key].shape)} {a[key].dtype} vs {tuple(b[key].shape)} {b[key].dtype}")
