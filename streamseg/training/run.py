"""`streamseg train` end to end: config, process group, data, vocabulary, trainer, clean shutdown."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from streamseg.errors import ConfigError
from streamseg.training.loop import TrainResult


def run_training(
    config_path: str,
    overrides: Sequence[str] = (),
    data: Sequence[str] | None = None,
    ratios: Sequence[float] | None = None,
    out: str | None = None,
    steps: int | None = None,
    resume: str | None = None,
    device: str | None = None,
    progress: bool = True,
    threads: int | None = None,
    max_minutes: float | None = None,
    init: str | None = None,
    eval_data: str | None = None,
    eval_every: int | None = None,
) -> TrainResult | None:
    """Train as the CLI asks; returns the result on rank 0 (None on the other ranks)."""
    import torch

    from streamseg.config import load_config
    from streamseg.training.clips import DatasetClips
    from streamseg.training.distributed import barrier, init_distributed, shutdown
    from streamseg.training.loop import Trainer
    from streamseg.vocab.encoders import encoder_id_for_spec
    from streamseg.vocab.files import build_vocabulary, check_vocabulary

    if threads is not None and threads < 1:
        raise ConfigError("--threads must be >= 1")
    # Default 1: on a shared 2-core CPU, two torch threads fighting other work ran ~30x slower
    # than one (measured); more threads are an explicit choice (--threads N).
    torch.set_num_threads(threads if threads is not None else 1)
    if max_minutes is not None and max_minutes <= 0:
        raise ConfigError("--max-minutes must be > 0")
    overrides = list(overrides)
    if steps is not None:
        if steps < 1:
            raise ConfigError("--steps must be >= 1")
        overrides.append(f"train.steps={steps}")
    cfg = load_config(config_path, overrides)
    if eval_data is not None:
        cfg.train.eval_data = eval_data
    if eval_every is not None:
        if eval_every < 1:
            raise ConfigError("--eval-every must be >= 1")
        cfg.train.eval_every = eval_every
    if cfg.train.eval_data:
        from streamseg.data.ytvis import resolve_annotations

        resolve_annotations(cfg.train.eval_data)  # a missing held-out set fails now, not after an hour
    paths = list(data) if data else list(cfg.train.datasets)
    if ratios is None and cfg.train.ratios:
        ratios = list(cfg.train.ratios)
    out_dir = Path(out) if out else Path("runs") / Path(config_path).stem
    if init is not None and resume is not None:
        raise ConfigError("--init and --resume exclude each other")
    if init is not None and not Path(init).is_file():
        raise ConfigError(f"--init checkpoint not found: {init}")
    if resume is not None and not Path(resume).is_file():
        raise ConfigError(f"--resume checkpoint not found: {resume}")

    info = init_distributed(device)
    try:
        provider = DatasetClips(paths, cfg, ratios)
        # Rank 0 embeds the vocabulary first so the others read it from the cache.
        if not info.is_main:
            barrier(info)
        voc = cfg.vocabulary
        vocabulary = build_vocabulary(provider.names, voc.encoder, voc.templates, use_cache=voc.cache)
        check_vocabulary(vocabulary, encoder_id_for_spec(voc.encoder), cfg.model.text_dim)
        if info.is_main:
            barrier(info)
            for line in provider.describe():
                print(f"train: {line}", file=sys.stderr)
            print(f"train: unified taxonomy ({len(provider.names)}): {', '.join(provider.names)}; "
                  f"{info.world_size} process(es) on {info.device}; output {out_dir}", file=sys.stderr)
        trainer = Trainer(cfg, provider, vocabulary, out_dir, info, progress=progress)
        if init is not None:
            from streamseg.predictor.checkpoint import load_checkpoint, load_matching_weights, summarize_names

            loaded, total, new = load_matching_weights(trainer.model, load_checkpoint(init))
            if info.is_main:
                print(f"train: initialised {loaded}/{total} tensors from {init}"
                      + (f"; new: {summarize_names(new)}" if new else ""), file=sys.stderr)
        if resume is not None:
            trainer.resume(resume)
            if info.is_main:
                print(f"train: resumed from {resume} at step {trainer.step}", file=sys.stderr)
        if trainer.step >= cfg.train.steps:
            raise ConfigError(f"nothing to do: the checkpoint is at step {trainer.step} and train.steps is "
                              f"{cfg.train.steps} (raise --steps)")
        result = trainer.run(cfg.train.steps, None if max_minutes is None else max_minutes * 60.0)
        return result if info.is_main else None
    finally:
        shutdown(info)
