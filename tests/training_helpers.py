"""Test doubles for the training tests: clips rendered straight from the synthetic scene."""
from __future__ import annotations

import numpy as np
import torch

from streamseg.data.synthetic_scene import SYNTHETIC_CLASSES, SceneConfig, SyntheticScene
from streamseg.training.loop import ClipBatch
from streamseg.training.losses import FrameTargets


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
        order = np.concatenate([rng.permutation(len(self.clips)) for _ in range(-(-batch // len(self.clips)))])
        picks = [self.clips[int(i)] for i in order[:batch]]  # every clip once per batch when batch = len
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


class one_torch_thread:
    """Run a block with one torch thread, then restore: on a busy 2-core machine OpenMP threads
    spin against each other and a tiny training step gets ~20x slower."""

    def __enter__(self) -> "one_torch_thread":
        self.before = torch.get_num_threads()
        torch.set_num_threads(1)
        return self

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.before)


def write_tiny_synth(out) -> None:
    """A tiny synthetic YouTube-VIS dataset (3 training videos, 1 held out) for CLI runs."""
    from streamseg.data.synth import SynthSpec, write_synthetic

    write_synthetic(SynthSpec(out=str(out), videos=3, val_videos=1, frames=6, width=96, height=64, instances=2))


def random_vocabulary(names: list[str], dim: int = 384, seed: int = 0):
    """A Vocabulary with fixed random unit embeddings (no text encoder needed)."""
    from streamseg.interface import Vocabulary

    emb = np.random.default_rng(seed).standard_normal((len(names), dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return Vocabulary(list(names), emb, "test:random")
