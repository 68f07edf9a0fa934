"""Checkpoints: one versioned dict (config, state_dict, vocabulary), loaded with ``weights_only=True``.

Only plain containers and tensors go in, so loading a checkpoint never runs code from the file. A
checkpoint that does not fit the model a config builds is refused with a one-line CheckpointError
that says what differs, instead of a half-loaded model or a wall of PyTorch text.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from streamseg.errors import CheckpointError
from streamseg.interface import Vocabulary
from streamseg.torch_files import save_atomic

CHECKPOINT_FORMAT = "streamseg-checkpoint"
CHECKPOINT_VERSION = 1
_SHOW = 3  # key names quoted per kind of mismatch; the count says the rest
_TRAINING_ONLY = ("train_state",)  # what only `train --resume` reads


def save_checkpoint(path: str | Path, model: Any, config: Any, vocabulary: Vocabulary,
                    extra: dict[str, Any] | None = None) -> None:
    """Write ``model``'s weights with its config and the vocabulary (hence text encoder) it was trained on.

    ``extra`` (e.g. training progress) is stored under its own keys; it must hold only plain data and
    tensors so the file stays loadable with weights_only=True.
    """
    import torch

    from streamseg.config import config_to_dict

    if vocabulary.embeddings is None:
        raise CheckpointError("a checkpoint needs a vocabulary with text embeddings")
    data: dict[str, Any] = dict(extra or {})
    data.update({
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": config_to_dict(config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "vocabulary": {
            "names": list(vocabulary.names),
            "embeddings": torch.from_numpy(np.ascontiguousarray(vocabulary.embeddings, dtype=np.float32)),
            "encoder_id": vocabulary.encoder_id,
        },
    })
    save_atomic(data, path)


def export_for_inference(src: str | Path, dst: str | Path) -> list[str]:
    """Write ``src`` (e.g. a training run's ``step_N.pt``) without what only resuming needs (the
    optimiser, scheduler and RNG states: two thirds of its size), checked like any checkpoint;
    returns the keys left out. Picking a mid-run checkpoint to ship or share needs nothing else."""
    data = load_checkpoint(src)
    dropped = [k for k in _TRAINING_ONLY if k in data]
    save_atomic(inference_part(data), dst)
    return dropped


def inference_part(data: dict[str, Any]) -> dict[str, Any]:
    """A loaded checkpoint without what only `train --resume` reads (a shallow copy)."""
    return {k: v for k, v in data.items() if k not in _TRAINING_ONLY}


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and check the structure of a checkpoint file (not yet against a model)."""
    import torch

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint is not a file: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, random bytes: torch raises many types
        raise CheckpointError(f"checkpoint {path} is unreadable or not a weights-only torch file "
                              f"({type(exc).__name__}: {_first_line(exc)})") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a streamseg checkpoint (format field missing or wrong)")
    if data.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint {path} has version {data.get('version')!r}; this streamseg reads "
                              f"version {CHECKPOINT_VERSION}")
    state = data.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path}: state_dict must map names to tensors")
    if not isinstance(data.get("config"), dict):
        raise CheckpointError(f"checkpoint {path}: config must be a mapping")
    checkpoint_vocabulary(data, str(path))  # validates the vocabulary entry
    return data


def checkpoint_config(data: dict[str, Any], overrides: list[str] | None = None) -> Any:
    """The Config stored in a checkpoint (plus ``--set`` overrides), validated like a YAML one."""
    import copy

    from streamseg.config import Config, _apply_override, from_dict, validate
    from streamseg.errors import ConfigError

    raw = copy.deepcopy(data["config"])
    for item in overrides or []:
        _apply_override(raw, item)
    try:
        cfg = from_dict(Config, raw, prefix="")
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint config: {exc}") from None
    validate(cfg)
    return cfg


def self_contained_config(path: str | None, overrides: list[str] | None = None) -> Any | None:
    """The checkpoint's own Config when ``path`` is a self-contained (imported) checkpoint, else
    None: ``streamseg run --checkpoint OUT.pt`` then needs no --config."""
    if not path:
        return None
    data = load_checkpoint(path)
    if not data.get("self_contained"):
        return None
    return checkpoint_config(data, overrides)


def checkpoint_vocabulary(data: dict[str, Any], where: str = "checkpoint") -> Vocabulary:
    import torch

    voc = data.get("vocabulary")
    if not isinstance(voc, dict):
        raise CheckpointError(f"{where}: vocabulary entry missing")
    names, emb, encoder_id = voc.get("names"), voc.get("embeddings"), voc.get("encoder_id")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{where}: vocabulary names must be a list of strings")
    if not isinstance(encoder_id, str) or not encoder_id:
        raise CheckpointError(f"{where}: vocabulary encoder_id missing")
    if not isinstance(emb, torch.Tensor) or emb.ndim != 2 or emb.shape[0] != len(names):
        raise CheckpointError(f"{where}: vocabulary embeddings must be a [{len(names)}, D] tensor")
    return Vocabulary(names=list(names), embeddings=emb.float().numpy().astype(np.float32), encoder_id=encoder_id)


# Modules added after checkpoints were already shipped: a checkpoint without them still loads (the
# model then works without that feature; e.g. no target-encoder weights = no targets).
OPTIONAL_PREFIXES = ("target_encoder.",)


def load_weights(model: Any, data: dict[str, Any], where: str = "checkpoint") -> list[str]:
    """Copy the checkpoint's weights into ``model``; every key and shape must match exactly, except
    that keys under OPTIONAL_PREFIXES may be absent. Returns those absent optional keys."""
    own = model.state_dict()
    theirs = data["state_dict"]
    absent_optional = [k for k in own if k not in theirs and k.startswith(OPTIONAL_PREFIXES)]
    missing = [k for k in own if k not in theirs and not k.startswith(OPTIONAL_PREFIXES)]
    unexpected = [k for k in theirs if k not in own]
    shapes = [f"{k} {list(theirs[k].shape)} vs model {list(v.shape)}"
              for k, v in own.items() if k in theirs and theirs[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({_some(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_some(unexpected)})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches ({_some(shapes)})")
    if problems:
        raise CheckpointError(f"{where} does not fit the config's model: " + "; ".join(problems))
    model.load_state_dict(theirs, strict=not absent_optional)
    return absent_optional


def load_matching_weights(model: Any, data: dict[str, Any]) -> tuple[int, int, list[str]]:
    """Load every checkpoint tensor whose name and shape fit ``model`` (fine-tuning a model that
    gained modules, or an imported Mask2Former gaining TCM/TIM); returns (loaded, model tensors,
    the model's tensors left new)."""
    own = model.state_dict()
    fit = {k: v for k, v in data["state_dict"].items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fit, strict=False)
    return len(fit), len(own), [k for k in own if k not in fit]


def summarize_names(names: list[str], depth: int = 2) -> str:
    """Tensor names grouped by their first ``depth`` components, with counts (one readable line)."""
    groups: dict[str, int] = {}
    for n in names:
        key = ".".join(n.split(".")[:depth])
        groups[key] = groups.get(key, 0) + 1
    return ", ".join(f"{k} ({c})" if c > 1 else k for k, c in groups.items())


def _some(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (", ..." if len(items) > _SHOW else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:160]
