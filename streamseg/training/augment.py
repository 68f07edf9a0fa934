"""Clip augmentation: one scale jitter, flip and crop drawn per clip and applied to every frame.

Drawing the parameters once per clip (not per frame) keeps the motion between frames real, which
is what an online model's query propagation and memory learn from.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from streamseg.training.datasets import Clip


@dataclass
class ClipAugment:
    short_side: int | None = None  # resize so the short side is this (times the jitter); None = keep size
    scale_range: tuple[float, float] = (0.8, 1.2)  # scale jitter
    flip_prob: float = 0.5  # horizontal flip
    crop: tuple[int, int] | None = None  # (h, w) random crop, zero/False-padded when the image is smaller

    def __call__(self, clip: Clip, rng: np.random.Generator) -> Clip:
        images, masks = clip.images, clip.masks
        H, W = images.shape[-2:]
        scale = float(rng.uniform(*self.scale_range))
        base = (self.short_side / min(H, W)) if self.short_side else 1.0
        h, w = max(1, round(H * base * scale)), max(1, round(W * base * scale))
        if (h, w) != (H, W):
            images = resize_images(images, (h, w))
            masks = resize_masks(masks, (h, w))
        if rng.random() < self.flip_prob:
            images, masks = images.flip(-1), masks.flip(-1)
        if self.crop is not None:
            ch, cw = self.crop
            y0 = int(rng.integers(0, max(h - ch, 0) + 1))
            x0 = int(rng.integers(0, max(w - cw, 0) + 1))
            images = _crop_pad(images, y0, x0, ch, cw)
            masks = _crop_pad(masks, y0, x0, ch, cw)
        present = clip.present & masks.flatten(2).any(-1) if masks.numel() else clip.present
        out = Clip(images.contiguous(), masks.contiguous(), present, clip.instance_ids, clip.class_ids,
                   clip.unified_ids, clip.category_names, clip.dataset, clip.video_id, clip.frame_indices)
        return out.keep_instances(present.any(1))


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[T, 3, H, W] uint8 -> bilinear (antialiased when shrinking) resize, uint8."""
    x = F.interpolate(images.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def resize_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[N, T, H, W] bool -> nearest resize (labels must not blend)."""
    if masks.shape[0] == 0:
        return torch.zeros((*masks.shape[:2], *size), dtype=torch.bool)
    x = F.interpolate(masks.flatten(0, 1)[:, None].to(torch.uint8), size=size, mode="nearest-exact")
    return x[:, 0].view(*masks.shape[:2], *size).bool()


def _crop_pad(x: torch.Tensor, y0: int, x0: int, ch: int, cw: int) -> torch.Tensor:
    """Crop the last two dims to [y0:y0+ch, x0:x0+cw], padding with zeros beyond the border."""
    out = torch.zeros((*x.shape[:-2], ch, cw), dtype=x.dtype)
    part = x[..., y0:y0 + ch, x0:x0 + cw]
    out[..., : part.shape[-2], : part.shape[-1]] = part
    return out
