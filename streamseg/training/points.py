"""Point sampling of mask logits and target masks (Mask2Former / PointRend style).

Losses and matching costs are computed on a few thousand sampled points instead of every pixel:
it keeps memory flat in the mask resolution and lets predictions (stride 4) and targets (input
resolution) be compared without resizing either.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def point_sample(masks: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample ``masks`` [N, H, W] at ``coords`` [N, P, 2] ((x, y) in [0, 1]) -> [N, P].

    Coordinates are continuous over the image (align_corners=False), so the same point hits the
    same place of a stride-4 prediction and of a full-resolution target.
    """
    grid = (2.0 * coords - 1.0).unsqueeze(1)  # N x 1 x P x 2
    # border padding: a point in the outer half-pixel takes the edge value, not a fade to 0
    out = F.grid_sample(
        masks.unsqueeze(1), grid.to(masks.dtype), mode="bilinear", padding_mode="border", align_corners=False
    )
    return out[:, 0, 0, :]


def sample_targets(masks: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Binary target labels at ``coords``: the bilinear mask thresholded at 0.5.

    Keeping labels 0/1 gives BCE and dice a true zero at a perfect prediction (fractional bilinear
    labels would leave the boundary's entropy), and thresholding the bilinear value puts the label
    boundary exactly where a perfect same-resolution logit map changes sign (nearest sampling
    disagrees with bilinear logits at mask corners).
    """
    return (point_sample(masks.float(), coords) >= 0.5).float()


def uncertain_point_coords(
    logits: torch.Tensor,
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mask2Former's importance sampling for mask logits [N, h, w] -> coords [N, num_points, 2].

    Draws ``oversample_ratio * num_points`` random points, keeps the
    ``importance_sample_ratio`` fraction whose logits are closest to 0 (most uncertain), and fills
    the rest uniformly at random: the loss concentrates on boundaries without ignoring the interior.
    """
    n = logits.shape[0]
    device = logits.device
    num_sampled = int(num_points * oversample_ratio)
    coords = torch.rand(n, num_sampled, 2, device=device, generator=generator)
    with torch.no_grad():
        uncertainty = -point_sample(logits.detach().float(), coords).abs()
    num_uncertain = int(importance_sample_ratio * num_points)
    num_random = num_points - num_uncertain
    idx = torch.topk(uncertainty, k=num_uncertain, dim=1).indices  # N x U
    picked = torch.gather(coords, 1, idx.unsqueeze(-1).expand(-1, -1, 2))
    if num_random > 0:
        extra = torch.rand(n, num_random, 2, device=device, generator=generator)
        picked = torch.cat([picked, extra], dim=1)
    return picked


def region_point_coords(
    regions: torch.Tensor, num_points: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniform points inside each of ``regions`` [N, H, W] (bool) -> coords [N, num_points, 2].

    Each point is a pixel of its region drawn at random, jittered inside the pixel; an empty
    region draws over the whole image instead (its points then cost nothing special).
    """
    n, h, w = regions.shape
    weights = regions.flatten(1).float()
    weights = torch.where(weights.sum(1, keepdim=True) > 0, weights, torch.ones_like(weights))
    idx = torch.multinomial(weights, num_points, replacement=True, generator=generator)  # N x P
    jitter = torch.rand(n, num_points, 2, device=regions.device, generator=generator)
    x = ((idx % w).float() + jitter[..., 0]) / w
    y = ((idx // w).float() + jitter[..., 1]) / h
    return torch.stack([x, y], dim=-1)
