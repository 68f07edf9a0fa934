"""Write a streamseg checkpoint from published weights: config + weights + closed-set vocabulary."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamseg.errors import CheckpointError
from streamseg.interface import Vocabulary
from streamseg.model.config import ModelConfig

CLOSED_SET_ENCODER = "closed-set"  # the vocabulary of a linear class head: one-hot rows


@dataclass
class ImportResult:
    path: Path
    config: ModelConfig
    names: list[str]
    new_keys: list[str]  # OnlineVIS tensors the source has no counterpart for (kept at init)
    seconds: float


def closed_set_vocabulary(names: list[str]) -> Vocabulary:
    return Vocabulary(names=list(names), embeddings=np.eye(len(names), dtype=np.float32),
                      encoder_id=CLOSED_SET_ENCODER)


def closed_set_subset(model_vocab: Vocabulary, names: list[str]) -> Vocabulary:
    """The rows of a closed-set vocabulary whose names are in ``names`` (a dataset's classes), in
    the model's order; a one-line error when none is."""
    keep = [i for i, n in enumerate(model_vocab.names) if n in set(names)]
    if not keep:
        raise CheckpointError(f"the model's classes ({', '.join(model_vocab.names[:5])}, ...) share no "
                              f"name with the dataset's ({', '.join(names[:5])}, ...)")
    assert model_vocab.embeddings is not None
    return Vocabulary(names=[model_vocab.names[i] for i in keep], embeddings=model_vocab.embeddings[keep],
                      encoder_id=model_vocab.encoder_id)


def closed_set_names(model_vocab: Vocabulary, names: list[str]) -> Vocabulary:
    """Exactly ``names`` (in that order) out of a closed-set model's classes (``run --names``,
    control's set_vocabulary); a name the model lacks is a one-line error."""
    from streamseg.errors import ConfigError

    index = {n: i for i, n in enumerate(model_vocab.names)}
    unknown = [n for n in names if n not in index]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], list(index), n=3)
        raise ConfigError(f"this closed-set model has no class {unknown[0]!r}"
                          + (f" (closest: {', '.join(close)})" if close else "")
                          + f"; its {len(index)} classes: {', '.join(list(index)[:8])}"
                          + (", ..." if len(index) > 8 else ""))
    assert model_vocab.embeddings is not None
    rows = [index[n] for n in names]
    return Vocabulary(names=list(names), embeddings=model_vocab.embeddings[rows],
                      encoder_id=model_vocab.encoder_id)


def build_imported(cfg: ModelConfig, mapped: dict[str, torch.Tensor]) -> tuple[Any, list[str]]:
    """OnlineVIS(cfg) holding ``mapped``; refuses missing or misshapen tensors. New modules the
    source lacks (memory reader) keep a seeded init and are listed."""
    from streamseg.model.online import OnlineVIS

    torch.manual_seed(0)
    model = OnlineVIS(cfg)
    own = model.state_dict()
    unexpected = [k for k in mapped if k not in own]
    shapes = [f"{k} {list(v.shape)} vs {list(own[k].shape)}" for k, v in mapped.items()
              if k in own and v.shape != own[k].shape]
    optional = ("memory_reader.", "tcm.", "decoder.tim.", "target_encoder.")  # streamseg-only modules
    missing = [k for k in own if k not in mapped and not k.startswith(optional)
               and not k.endswith("relative_position_index")]
    for what, items in (("unexpected", unexpected), ("shape mismatches", shapes), ("missing", missing)):
        if items:
            raise CheckpointError(f"checkpoint does not fit a Mask2Former of its config: {len(items)} {what} "
                                  f"({', '.join(items[:3])}{', ...' if len(items) > 3 else ''})")
    new = [k for k in own if k not in mapped]
    model.load_state_dict({**own, **{k: v.to(own[k].dtype) for k, v in mapped.items()}}, strict=True)
    return model.eval(), new


def imported_config(model: ModelConfig) -> Any:
    """The Config an imported image model runs with: fresh queries every frame matched to tracks
    by embedding (tracker.mode match, MinVIS) and Mask2Former's own instance scoring."""
    from streamseg.config import Config
    from streamseg.predictor.config import PostprocessConfig
    from streamseg.tracking.config import TrackerConfig

    return Config(model=model, tracker=TrackerConfig(mode="match"),
                  postprocess=PostprocessConfig(mode="mask2former"))


def import_transformers(src: str | Path, out: str | Path, **overrides: Any) -> ImportResult:
    from streamseg.predictor.checkpoint import save_checkpoint
    from streamseg.weights_import.transformers_folder import model_config, read_folder
    from streamseg.weights_import.transformers_keys import map_state_dict

    t0 = time.perf_counter()
    folder = Path(src)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder (a transformers checkpoint is config.json + weights)")
    hf_config, state = read_folder(folder)
    cfg, names = model_config(hf_config, **overrides)
    model, new = build_imported(cfg, map_state_dict(state))
    config = imported_config(cfg)
    save_checkpoint(out, model, config, closed_set_vocabulary(names),
                    extra={"self_contained": True, "imported_from": str(folder)})
    return ImportResult(Path(out), cfg, names, new, time.perf_counter() - t0)


def import_detectron2(src: str | Path, out: str | Path, classes: str | None = None, heads: int = 8,
                      **overrides: Any) -> ImportResult:
    """An original detectron2 Mask2Former / MinVIS ``.pkl`` or ``.pth``: sizes from the tensor
    shapes, class names from the dataset ``classes`` names (``class_names.DATASETS``)."""
    from streamseg.predictor.checkpoint import save_checkpoint
    from streamseg.weights_import.class_names import class_names
    from streamseg.weights_import.detectron2_file import read_checkpoint
    from streamseg.weights_import.detectron2_keys import map_state_dict, model_config

    t0 = time.perf_counter()
    state = read_checkpoint(src)
    cfg, num_classes = model_config(state, heads=heads, **overrides)
    names = class_names(classes, num_classes)
    model, new = build_imported(cfg, map_state_dict(state))
    save_checkpoint(out, model, imported_config(cfg), closed_set_vocabulary(names),
                    extra={"self_contained": True, "imported_from": str(src)})
    return ImportResult(Path(out), cfg, names, new, time.perf_counter() - t0)
