"""Batches of training clips from the jointly trained datasets (adapts the data pipeline to the loop).

Each step draws its datasets by the sampler's ratios and its clips from those datasets with the
step's own generator, so a batch is a pure function of (seed, rank, step): DDP ranks draw
different clips without talking to each other, and --resume replays exactly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from streamseg.data.ytvis import image_root_for, load_ytvis, resolve_annotations
from streamseg.errors import ConfigError
from streamseg.training.augment import ClipAugment
from streamseg.training.datasets import Clip, YtvisClipDataset
from streamseg.training.loop import ClipBatch
from streamseg.training.losses import FrameTargets
from streamseg.training.sampler import MultiDatasetSampler, default_ratios
from streamseg.training.synthetic_clips import SyntheticClipDataset, is_synthetic_spec, parse_synthetic_spec
from streamseg.training.target_clips import sample_target_prompts
from streamseg.training.unified_classes import taxonomy_of


def crop_size(cfg: Any) -> tuple[int, tuple[int, int]]:
    """(short side, (crop h, crop w)) of the training clips for a Config."""
    t = cfg.train
    short = t.short_side or cfg.model.input_short_side
    if t.crop:
        return short, (int(t.crop[0]), int(t.crop[1]))
    return short, (short, max(32, int(round(1.5 * short / 32)) * 32))


class DatasetClips:
    """The ClipProvider of `streamseg train`: YouTube-VIS datasets, unified taxonomy, ratios."""

    def __init__(self, paths: Sequence[str | Path], cfg: Any, ratios: Sequence[float] | None = None) -> None:
        if not paths:
            raise ConfigError("no training data: pass --data DIR (or set train.datasets)")
        if ratios is not None and len(ratios) != len(paths):
            raise ConfigError(f"--ratios has {len(ratios)} values for {len(paths)} datasets")
        # a folder or JSON of YouTube-VIS annotations, or synth://?seed=S (rendered when drawn)
        synthetic = {i: parse_synthetic_spec(str(p)) for i, p in enumerate(paths) if is_synthetic_spec(str(p))}
        files = {i: resolve_annotations(p, "train.json") for i, p in enumerate(paths) if i not in synthetic}
        loaded = {}
        for i in range(len(paths)):
            if i in synthetic:
                loaded[f"{i}:synth/seed{synthetic[i].seed}"] = SyntheticClipDataset.categories()
            else:
                loaded[f"{i}:{files[i].parent.name}/{files[i].stem}"] = load_ytvis(files[i])
        self.taxonomy = taxonomy_of(loaded, cfg.train.alias_file)
        self.names = list(self.taxonomy.names)
        self.train_cfg = cfg.train
        short, crop = crop_size(cfg)
        augment = ClipAugment(short_side=short, scale_range=(cfg.train.scale_min, cfg.train.scale_max),
                              flip_prob=cfg.train.flip_prob, crop=crop)
        self.datasets: list[YtvisClipDataset | SyntheticClipDataset] = [
            SyntheticClipDataset(synthetic[i], num_frames=cfg.train.clip_frames, max_stride=cfg.train.max_stride,
                                 transform=augment, unified_map=self.taxonomy.maps[name], name=name)
            if i in synthetic else
            YtvisClipDataset(ds, num_frames=cfg.train.clip_frames, max_stride=cfg.train.max_stride,
                             seed=cfg.train.seed, transform=augment, unified_map=self.taxonomy.maps[name],
                             name=name, image_root=image_root_for(files[i]))
            for i, (name, ds) in enumerate(loaded.items())
        ]
        for ds in self.datasets:
            if len(ds) == 0:
                raise ConfigError(f"dataset {ds.name} has no videos")
        self.ratios = tuple(ratios) if ratios else default_ratios([str(files.get(i, p)) for i, p in enumerate(paths)])
        self.sampler = MultiDatasetSampler([len(d) for d in self.datasets], self.ratios, seed=cfg.train.seed,
                                           rank=0, world_size=1)
        self.class_masks = []
        for ds in self.datasets:
            m = torch.zeros(len(self.names), dtype=torch.bool)
            m[list(self.taxonomy.maps[ds.name].values())] = True
            self.class_masks.append(m)

    def describe(self) -> list[str]:
        return [f"{ds.name}: {len(ds)} videos, classes {', '.join(ds.category_names)}, ratio {r:g}"
                for ds, r in zip(self.datasets, self.ratios)]

    def sample(self, rng: np.random.Generator, batch: int, clip_frames: int) -> ClipBatch:
        clips: list[Clip] = []
        masks = []
        for index in self.sampler.draw(rng, batch):
            d = self.sampler.dataset_of(int(index))
            local = int(index - self.sampler.offsets[d])
            clips.append(self.datasets[d].sample_clip(local, rng, num_frames=clip_frames))
            masks.append(self.class_masks[d])
        batch_out = clips_to_batch(clips, torch.stack(masks))
        t = self.train_cfg
        # multi-task sampling: a share of the steps are target clips (VOS/PET prompts from the GT)
        if t.target_ratio > 0 and rng.random() < t.target_ratio:
            batch_out.targets_sample = sample_target_prompts(clips, rng, t.max_train_targets, t.target_prompts,
                                                               t.target_small_early)
        return batch_out


def clips_to_batch(clips: Sequence[Clip], class_mask: torch.Tensor | None = None) -> ClipBatch:
    """Stack same-size clips into (T, B, 3, H, W) and per-frame targets in unified class ids."""
    sizes = {tuple(c.images.shape) for c in clips}
    if len(sizes) != 1:
        raise ConfigError(f"clips of one batch must have one size, got {sorted(sizes)} (set train.crop)")
    images = torch.stack([c.images for c in clips], dim=1)
    targets = []
    for t in range(images.shape[0]):
        frame = []
        for c in clips:
            keep = c.present[:, t]
            frame.append(FrameTargets(labels=c.unified_ids[keep], masks=c.masks[keep, t], ids=c.instance_ids[keep]))
        targets.append(frame)
    return ClipBatch(images=images, targets=targets, class_mask=class_mask)
