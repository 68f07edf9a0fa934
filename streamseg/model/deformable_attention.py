"""Multi-scale deformable attention (Deformable DETR) in pure PyTorch, sampling with grid_sample.

No compiled op: it runs anywhere torch runs (CPU included), at the price of one grid_sample per
level. Locations are normalised to [0, 1] with (0, 0) the top-left corner of the map and pixel
centres at (i + 0.5) / size, i.e. ``grid_sample(align_corners=False)`` with zero padding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def ms_deform_attn_sample(value: torch.Tensor, shapes: list[tuple[int, int]],
                          locations: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """value (B, S, H, D) with S = sum(h*w), locations (B, Nq, H, L, P, 2) as (x, y) in [0, 1],
    weights (B, Nq, H, L, P) -> (B, Nq, H*D): per head, the weighted sum of bilinear samples."""
    b, _, heads, d = value.shape
    _, nq, _, levels, points, _ = locations.shape
    per_level = value.split([h * w for h, w in shapes], dim=1)
    grids = 2.0 * locations - 1.0
    w = weights.transpose(1, 2).reshape(b * heads, nq, levels, points)
    out = value.new_zeros(b * heads, d, nq)
    for lid, (h, wd) in enumerate(shapes):
        v = per_level[lid].permute(0, 2, 3, 1).reshape(b * heads, d, h, wd)
        g = grids[:, :, :, lid].transpose(1, 2).reshape(b * heads, nq, points, 2)
        sampled = F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False)
        # (B*H, D, Nq, P) weighted by (B*H, 1, Nq, P), summed over points, accumulated per level
        # (stacking all levels first costs a large extra copy)
        out = out + (sampled * w[:, None, :, lid]).sum(-1)
    return out.view(b, heads * d, nq).transpose(1, 2)


class MSDeformAttn(nn.Module):
    """Each query samples ``points`` locations per head and level around its reference point."""

    def __init__(self, dim: int, levels: int, heads: int, points: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        self.levels, self.heads, self.points = levels, heads, points
        self.sampling_offsets = nn.Linear(dim, heads * levels * points * 2)
        self.attention_weights = nn.Linear(dim, heads * levels * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # Deformable DETR's init: head h starts sampling along direction 2*pi*h/heads, point p at
        # distance p+1 pixels, so the initial pattern covers a neighbourhood instead of one spot.
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(self.heads, dtype=torch.float32) * (2.0 * math.pi / self.heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid.view(self.heads, 1, 1, 2).repeat(1, self.levels, self.points, 1)
        for i in range(self.points):
            grid[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(self, query: torch.Tensor, reference_points: torch.Tensor, value: torch.Tensor,
                shapes: list[tuple[int, int]]) -> torch.Tensor:
        """query (B, Nq, C), reference_points (B, Nq, L, 2) in [0, 1], value (B, S, C)."""
        b, nq, c = query.shape
        v = self.value_proj(value).view(b, value.shape[1], self.heads, c // self.heads)
        offsets = self.sampling_offsets(query).view(b, nq, self.heads, self.levels, self.points, 2)
        weights = self.attention_weights(query).view(b, nq, self.heads, self.levels * self.points)
        weights = weights.softmax(-1).view(b, nq, self.heads, self.levels, self.points)
        normalizer = torch.tensor([[w, h] for h, w in shapes], dtype=query.dtype, device=query.device)
        locations = (reference_points[:, :, None, :, None, :]
                     + offsets / normalizer[None, None, None, :, None, :])
        return self.output_proj(ms_deform_attn_sample(v, shapes, locations, weights))
