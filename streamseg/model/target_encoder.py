"""Target encoder (TarViS's idea): a prompt on one frame becomes a query decoded beside the class queries.

A prompt is a mask (VOS), a box, or one or more points (PET) on frame t, in the network's input
coordinates. Its initial query is built from that frame's own features:
  mask / box: the mask features and every feature level average-pooled inside the region;
  points:     every feature level and the mask features bilinearly sampled at the points
              (averaged over the points), i.e. the point seen at strides 32, 16, 8 and 4.
Then a learned embedding per prompt kind is added and a few attention layers refine the queries
(cross-attention to the frame's stride-16 features, self-attention among the targets, FFN). The
result enters the same masked decoder as the class queries; afterwards a target is propagated
frame to frame through its own memory slot, like any query.

The target slots of a stream (``TargetSlots``) have a fixed capacity (``max_targets``), so their
state stays bounded however many targets come and go.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from streamseg.model.layers import CrossAttentionLayer, FFNLayer, SelfAttentionLayer
from streamseg.model.position_encoding import sine_position_encoding

PROMPT_KINDS = ("mask", "box", "point")


@dataclass
class TargetPrompt:
    """One prompt in input-image pixels (the preprocessed frame's size).

    kind "mask": ``mask`` (H, W) bool; "box": ``box`` (x0, y0, x1, y1); "point": ``points`` (P, 2)
    as (x, y).
    """

    kind: str
    mask: torch.Tensor | None = None
    box: tuple[float, float, float, float] | None = None
    points: torch.Tensor | None = None


def box_region(box: tuple[float, float, float, float], in_h: int, in_w: int, height: int, width: int,
               device: torch.device) -> torch.Tensor:
    """A box in input pixels -> (height, width) float coverage of each feature cell (0..1)."""
    x0, y0, x1, y1 = box
    sy, sx = height / in_h, width / in_w
    ys = torch.arange(height, device=device, dtype=torch.float32)
    xs = torch.arange(width, device=device, dtype=torch.float32)
    cov_y = ((torch.clamp(ys + 1, max=y1 * sy) - torch.clamp(ys, min=y0 * sy)).clamp(min=0)).clamp(max=1)
    cov_x = ((torch.clamp(xs + 1, max=x1 * sx) - torch.clamp(xs, min=x0 * sx)).clamp(min=0)).clamp(max=1)
    return cov_y[:, None] * cov_x[None, :]


@dataclass
class TargetSlots:
    """A stream's targets inside the model state: fixed capacity, ``active`` marks live slots.

    queries (B, N, C) their current content (output of the previous frame, or the encoder's for a
    new target); pos (B, N, C) positional embeddings; memory (B, N, M, C) and memory_len (B, N) as
    for the class queries; active (B, N) bool.
    """

    queries: torch.Tensor
    pos: torch.Tensor
    memory: torch.Tensor
    memory_len: torch.Tensor
    active: torch.Tensor

    @property
    def capacity(self) -> int:
        return int(self.queries.shape[1])


class TargetEncoder(nn.Module):
    def __init__(self, dim: int, mask_dim: int, heads: int, ffn_dim: int, layers: int = 2,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.kind_embed = nn.Embedding(len(PROMPT_KINDS), dim)
        self.pos_embed = nn.Embedding(len(PROMPT_KINDS), dim)  # the target's query_pos, per kind
        self.level_proj = nn.Linear(3 * dim + mask_dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.cross = nn.ModuleList(CrossAttentionLayer(dim, heads, dropout) for _ in range(layers))
        self.self_attn = nn.ModuleList(SelfAttentionLayer(dim, heads, dropout) for _ in range(layers))
        self.ffn = nn.ModuleList(FFNLayer(dim, ffn_dim, dropout) for _ in range(layers))

    def forward(self, levels: list[torch.Tensor], mask_features: torch.Tensor,
                prompts: list[list[TargetPrompt]], input_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """levels (strides 32/16/8, each (B, C, h, w)), mask_features (B, Cm, H4, W4); prompts[b]:
        the N prompts of stream b (N equal over the batch); input_size (H, W) of the network input.
        Returns (queries, pos), each (B, N, C)."""
        maps = [*levels, mask_features]
        b = len(prompts)
        n = len(prompts[0])
        assert all(len(p) == n for p in prompts), "every stream of a batch needs as many prompts"
        device = mask_features.device
        feats = []
        kinds = torch.tensor([[PROMPT_KINDS.index(p.kind) for p in row] for row in prompts], device=device,
                             dtype=torch.long)
        for bi, row in enumerate(prompts):
            row_feats = []
            for prompt in row:
                parts = [self._pool(m[bi], prompt, input_size) for m in maps]
                row_feats.append(torch.cat(parts))
            feats.append(torch.stack(row_feats))
        x = self.norm(self.level_proj(torch.stack(feats).to(mask_features.dtype)))  # (B, N, C)
        x = x + self.kind_embed(kinds)
        pos = self.pos_embed(kinds)
        src_map = levels[1]
        h, w = src_map.shape[-2:]
        src = src_map.flatten(2).transpose(1, 2)
        src_pos = sine_position_encoding(h, w, src_map.shape[1], device, src_map.dtype)[None]
        for cross, self_attn, ffn in zip(self.cross, self.self_attn, self.ffn):
            x = cross(x, src, pos_q=pos, pos_k=src_pos)
            x = self_attn(x, pos)
            x = ffn(x)
        assert x.shape[:2] == (b, n)
        return x, pos

    @staticmethod
    def _pool(feat: torch.Tensor, prompt: TargetPrompt, input_size: tuple[int, int]) -> torch.Tensor:
        """feat (C, h, w) -> (C,): region average (mask/box) or point samples (points)."""
        c, h, w = feat.shape
        in_h, in_w = input_size
        if prompt.kind == "point":
            assert prompt.points is not None
            pts = prompt.points.to(device=feat.device, dtype=torch.float32).reshape(-1, 2)
            # pixel centres: x in [0, W) -> grid in [-1, 1] with align_corners=False
            gx = (pts[:, 0] + 0.5) / in_w * 2 - 1
            gy = (pts[:, 1] + 0.5) / in_h * 2 - 1
            grid = torch.stack([gx, gy], -1)[None, None].to(feat.dtype)  # (1, 1, P, 2)
            sampled = F.grid_sample(feat[None], grid, mode="bilinear", align_corners=False)
            return sampled[0, :, 0].mean(-1)
        if prompt.kind == "mask":
            assert prompt.mask is not None
            m = prompt.mask.to(device=feat.device, dtype=torch.float32)[None, None]
            region = F.interpolate(m, size=(h, w), mode="area")[0, 0]
        else:
            assert prompt.box is not None
            region = box_region(prompt.box, in_h, in_w, h, w, feat.device)
        region = region.to(feat.dtype)
        total = region.sum()
        if float(total) <= 0:  # a region smaller than one cell: fall back to its centre point
            ys, xs = _centre(prompt, in_h, in_w)
            return TargetEncoder._pool(feat, TargetPrompt("point", points=torch.tensor([[xs, ys]])), input_size)
        return (feat * region).flatten(1).sum(-1) / total


def _centre(prompt: TargetPrompt, in_h: int, in_w: int) -> tuple[float, float]:
    if prompt.kind == "box":
        assert prompt.box is not None
        x0, y0, x1, y1 = prompt.box
        return (y0 + y1) / 2 - 0.5, (x0 + x1) / 2 - 0.5
    assert prompt.mask is not None
    idx = torch.nonzero(prompt.mask)
    if idx.numel() == 0:
        return in_h / 2, in_w / 2
    centre = idx.float().mean(0)
    return float(centre[0]), float(centre[1])
