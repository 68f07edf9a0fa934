"""Pixel decoders: backbone features -> three transformer memory levels + stride-4 mask features.

Both variants return ``PixelFeatures``: ``levels`` ordered low -> high resolution (strides 32, 16,
8), each (B, C, h, w) with C = hidden_dim, and ``mask_features`` (B, mask_dim, H/4, W/4), or
(B, mask_dim, H/2, W/2) for the FPN with a fine branch (``model.mask_stride: 2``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from streamseg.model.deformable_attention import MSDeformAttn
from streamseg.model.layers import FFNLayer
from streamseg.model.position_encoding import sine_position_encoding


@dataclass
class PixelFeatures:
    levels: list[torch.Tensor]  # strides 32, 16, 8 (low -> high resolution)
    mask_features: torch.Tensor  # stride 4 (2 with the FPN's fine branch)


class Pointwise(nn.Conv2d):
    """A 1x1 convolution computed as a matmul over channels-last pixels. PyTorch's CPU kernel for
    1x1 convolutions goes through im2col and transposing copies (~3x slower at stride 4 in the
    CPU config); the weights and their names are nn.Conv2d's, so checkpoints are unchanged."""

    def __init__(self, cin: int, cout: int, bias: bool = True) -> None:
        super().__init__(cin, cout, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nhwc = x.permute(0, 2, 3, 1)
        return F.linear(nhwc, self.weight.flatten(1), self.bias).permute(0, 3, 1, 2)


def _conv(cin: int, cout: int, k: int, groups: int = 1, bias: bool = True) -> nn.Conv2d:
    if k == 1 and groups == 1:
        return Pointwise(cin, cout, bias=bias)
    return nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=bias)


def _conv_gn(cin: int, cout: int, k: int, groups: int = 1, act: bool = False,
             bias: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [_conv(cin, cout, k, groups=groups, bias=bias),
                               nn.GroupNorm(min(32, cout), cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DeformableEncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, points: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.attn = MSDeformAttn(dim, levels=3, heads=heads, points=points)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.ffn = FFNLayer(dim, ffn_dim, dropout)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, ref: torch.Tensor,
                shapes: list[tuple[int, int]]) -> torch.Tensor:
        src = self.norm(src + self.dropout(self.attn(src + pos, ref, src, shapes)))
        return self.ffn(src)


class DeformablePixelDecoder(nn.Module):
    """Mask2Former's MSDeformAttnPixelDecoder: a deformable encoder over strides 8/16/32, then one
    FPN step to stride 4 for the mask features."""

    def __init__(self, in_channels: tuple[int, int, int, int], dim: int, mask_dim: int, layers: int,
                 heads: int, points: int, ffn_dim: int, dropout: float = 0.0,
                 mask2former: bool = False) -> None:
        super().__init__()
        # input projections for c5, c4, c3 (low -> high resolution); Mask2Former's have a bias
        self.input_proj = nn.ModuleList(
            _conv_gn(c, dim, 1, bias=mask2former) for c in (in_channels[3], in_channels[2], in_channels[1]))
        self.pos_eps = 1e-6 if mask2former else 0.0
        self.level_embed = nn.Parameter(torch.randn(3, dim) * 0.02)
        self.layers = nn.ModuleList(
            DeformableEncoderLayer(dim, heads, points, ffn_dim, dropout) for _ in range(layers))
        self.lateral = _conv_gn(in_channels[0], dim, 1)
        self.output = _conv_gn(dim, dim, 3, act=True)
        self.mask_proj = nn.Conv2d(dim, mask_dim, 1)

    def forward(self, feats: list[torch.Tensor]) -> PixelFeatures:
        c2, c3, c4, c5 = feats
        maps = [proj(f) for proj, f in zip(self.input_proj, (c5, c4, c3))]
        shapes = [(m.shape[2], m.shape[3]) for m in maps]
        b, c = maps[0].shape[:2]
        src = torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1)
        pos = torch.cat([sine_position_encoding(h, w, c, src.device, src.dtype, eps=self.pos_eps)
                         + self.level_embed[i]
                         for i, (h, w) in enumerate(shapes)], dim=0)[None]
        ref = torch.cat([_reference_points(h, w, src.device, src.dtype) for h, w in shapes], 0)
        ref = ref[None, :, None, :].expand(b, -1, 3, -1)
        for layer in self.layers:
            src = layer(src, pos, ref, shapes)
        outs = []
        for (h, w), part in zip(shapes, src.split([h * w for h, w in shapes], dim=1)):
            outs.append(part.transpose(1, 2).reshape(b, c, h, w))
        y = self.lateral(c2) + F.interpolate(outs[-1], size=c2.shape[-2:], mode="bilinear",
                                             align_corners=False)
        return PixelFeatures(levels=outs, mask_features=self.mask_proj(self.output(y)))


def _reference_points(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Pixel centres of an h x w map as (h*w, 2) (x, y) in [0, 1]."""
    ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)


class RefineBlock(nn.Module):
    """Residual depthwise-separable 5x5 block at stride 4: spatial context for the mask features,
    whose only other input there is a 1x1 projection of the backbone's low-level c2 (texture
    leaks into the masks without it). The last norm starts at zero, so adding blocks to a trained
    model leaves its output unchanged until they are trained."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        last = _conv_gn(dim, dim, 1)
        self.body = nn.Sequential(_conv_gn(dim, dim, 5, groups=dim, act=True), last)
        nn.init.zeros_(last[1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


FINE_DIM = 32  # channels of the fine branch's 3x3 conv on c1 (16 channels in MobileNetV2)


class FPNPixelDecoder(nn.Module):
    """Light top-down FPN for the CPU config: 1x1 laterals, nearest upsampling, depthwise-separable
    3x3 smoothing at strides 16 and 8. The stride-4 step is lateral + upsample + add + ReLU,
    ``refine`` residual depthwise-separable blocks, and a 1x1 projection: a dense 3x3 conv there
    would cost more than the rest of the decoder. Everything runs channels-last (the backbone's
    layout): mixing layouts costs a transposing copy per op."""

    def __init__(self, in_channels: tuple[int, int, int, int], dim: int, mask_dim: int,
                 refine: int = 0, fine_channels: int = 0) -> None:
        super().__init__()
        # stride-2 mask features: the stride-4 ones upsampled bilinearly plus a small branch
        # from the backbone's stride-2 features (c1, first in ``feats``). Its last norm starts at
        # zero, so a trained stride-4 model keeps its masks (upsampled) until the branch trains.
        self.fine = None
        if fine_channels:
            last = _conv_gn(FINE_DIM, mask_dim, 1)
            nn.init.zeros_(last[1].weight)
            self.fine = nn.Sequential(_conv_gn(fine_channels, FINE_DIM, 3, act=True), last)
        self.lateral = nn.ModuleList(_conv_gn(c, dim, 1) for c in in_channels[1:])  # c3..c5
        self.smooth = nn.ModuleList(
            nn.Sequential(_conv_gn(dim, dim, 3, groups=dim), _conv_gn(dim, dim, 1, act=True))
            for _ in range(2))  # strides 16, 8 (the stride-32 output is its lateral)
        self.lateral4 = Pointwise(in_channels[0], dim)
        self.refine = nn.Sequential(*(RefineBlock(dim) for _ in range(refine)))
        self.mask_proj = Pointwise(dim, mask_dim)

    def forward(self, feats: list[torch.Tensor]) -> PixelFeatures:
        feats = [f.contiguous(memory_format=torch.channels_last) for f in feats]
        c1 = feats.pop(0) if self.fine is not None else None
        c2 = feats[0]
        lats = [lat(f) for lat, f in zip(self.lateral, feats[1:])]  # strides 8, 16, 32
        y = lats[2]
        outs = [y]
        for i, lateral in enumerate((lats[1], lats[0])):
            y = lateral + F.interpolate(y, size=lateral.shape[-2:], mode="nearest")
            y = self.smooth[i](y)
            outs.append(y)
        y4 = self.refine(F.relu(self.lateral4(c2) + F.interpolate(y, size=c2.shape[-2:], mode="nearest")))
        mask_features = self.mask_proj(y4)
        if self.fine is not None:
            assert c1 is not None
            mask_features = self.fine(c1) + F.interpolate(mask_features, size=c1.shape[-2:], mode="bilinear",
                                                          align_corners=False)
        return PixelFeatures(levels=outs, mask_features=mask_features)


def build_pixel_decoder(kind: str, in_channels: tuple[int, int, int, int], dim: int, mask_dim: int,
                        layers: int, heads: int, points: int, ffn_dim: int,
                        dropout: float = 0.0, mask2former: bool = False, refine: int = 0,
                        fine_channels: int = 0) -> nn.Module:
    if kind == "deformable":
        return DeformablePixelDecoder(in_channels, dim, mask_dim, layers, heads, points, ffn_dim,
                                      dropout, mask2former)
    if kind == "fpn":
        return FPNPixelDecoder(in_channels, dim, mask_dim, refine, fine_channels)
    raise ValueError(f"unknown pixel decoder {kind!r}")
