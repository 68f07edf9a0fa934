"""Target clips for multi-task training: prompts sampled from the ground truth of a clip.

The synthetic scene (and any VIS dataset) knows every mask, so a VOS/PET training sample needs
no extra annotation: on a random frame of the clip, pick objects visible there and prompt each by
its mask, its box, or one point inside it; the prompted objects' masks over the whole clip are
the targets of the target queries.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from streamseg.predictor.targets import SourcePrompt
from streamseg.training.datasets import Clip


@dataclass
class TargetSample:
    prompts: list[list[SourcePrompt]]  # [b][k] in the clip's image pixels
    prompt_frame: int
    masks: torch.Tensor  # (T, B, k, H, W) bool: each prompted object's masks over the clip


def prompt_from_mask(mask: np.ndarray, kind: str, rng: np.random.Generator) -> SourcePrompt:
    """A mask, its tight box, or one uniformly drawn pixel (centre) of it."""
    if kind == "mask":
        return SourcePrompt("mask", mask=mask.astype(bool))
    ys, xs = np.nonzero(mask)
    if kind == "box":
        return SourcePrompt("box", box=(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)))
    i = int(rng.integers(0, len(xs)))
    return SourcePrompt("point", points=np.array([[xs[i], ys[i]]], dtype=np.float32))


def sample_target_prompts(clips: Sequence[Clip], rng: np.random.Generator, max_targets: int,
                          kinds: Sequence[str], small_early: float = 0.0) -> TargetSample | None:
    """The same prompt frame and number k of prompted objects for every clip of the batch (the
    decoder takes one query set per batch); None when some clip has no object on that frame.

    With probability ``small_early`` the sample is one of eval-targets' hard cases: the prompt
    frame is in the first half of the clip (a long track follows) and the k smallest visible
    objects are prompted (an object entering the view is a sliver); otherwise a uniform frame and
    k objects at random."""
    num_frames = clips[0].num_frames
    hard = small_early > 0 and rng.random() < small_early
    t0 = int(rng.integers(0, (num_frames + 1) // 2 if hard else num_frames))
    visible = [torch.nonzero(c.present[:, t0] & c.masks[:, t0].flatten(1).any(1)).flatten() for c in clips]
    k = min(max_targets, *(len(v) for v in visible))
    if k == 0:
        return None
    prompts, masks = [], []
    for clip, vis in zip(clips, visible):
        if hard:
            areas = clip.masks[vis, t0].flatten(1).sum(1)
            chosen = vis[torch.argsort(areas, stable=True)[:k]]
        else:
            chosen = vis[torch.from_numpy(rng.permutation(len(vis))[:k])]
        row = [prompt_from_mask(clip.masks[i, t0].numpy(), str(kinds[int(rng.integers(0, len(kinds)))]), rng)
               for i in chosen.tolist()]
        prompts.append(row)
        masks.append(clip.masks[chosen])  # (k, T, H, W)
    stacked = torch.stack(masks).permute(2, 0, 1, 3, 4)  # (T, B, k, H, W)
    return TargetSample(prompts=prompts, prompt_frame=t0, masks=stacked)
