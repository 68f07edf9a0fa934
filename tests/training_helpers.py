"""Test doubles for the training tests: clips rendered straight from the synthetic scene."""
from __future__ import annotations

import numpy as np
import torch

from streamseg.sources.synthetic_scene import SYNTHETIC_CLASSES, SceneConfig, SyntheticScene
from streamseg.training.losses import FrameTargets
from streamseg.training.loop import ClipBatch


class SceneClips:
    """A fixed set of clips (scene seed, start frame) of the synthetic scene; ``sample`` draws from
    them with the step's generator, so an overfitting run sees the same few clips again and again."""

    names = list(SYNTHETIC_CLASSES)

    def __init__(self, clips: list[tuple[int, int]], width: int = 96, height: int = 64, instances: int = 2,
                 frame_step: int = 2) -> None:
        self.clips = clips
        self.scenes = {seed: SyntheticScene(SceneConfig(seed=seed, width=width, height=height,
                                                        instances=instances, noise=0.0))
                       for seed, _ in clips}
        self.frame_step = frame_step

    def sample(self, rng: np.random.Generator, batch: int, clip_frames: int) -> ClipBatch:
        picks = [self.clips[int(i)] for i in rng.integers(0, len(self.clips), size=batch)]
        images = []
        targets: list[list[FrameTargets]] = []
        for t in range(clip_frames):
            frame_imgs, frame_tgts = [], []
            for seed, start in picks:
                image, truth = self.scenes[seed].render(start + t * self.frame_step)
                frame_imgs.append(torch.from_numpy(image))
                truth = [i for i in truth if i.mask.any()]
                h, w = image.shape[:2]
                frame_tgts.append(FrameTargets(
                    labels=torch.tensor([i.class_id for i in truth], dtype=torch.long),
                    masks=torch.from_numpy(np.stack([i.mask for i in truth])) if truth
                    else torch.zeros(0, h, w, dtype=torch.bool),
                    ids=torch.tensor([i.instance_id for i in truth], dtype=torch.long),
                ))
            images.append(torch.stack(frame_imgs))
            targets.append(frame_tgts)
        return ClipBatch(images=torch.stack(images), targets=targets)
