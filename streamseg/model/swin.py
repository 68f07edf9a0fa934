"""Swin Transformer backbone (torchvision's implementation) with Mask2Former's per-stage norms.

Mask2Former (detectron2's D2SwinTransformer and transformers' SwinBackbone alike) reads the
output of each of the four stages before patch merging, through one LayerNorm per stage, as the
stride-4/8/16/32 features. torchvision's ``SwinTransformer.features`` is
[patch embed, stage 1, merge, stage 2, merge, stage 3, merge, stage 4], channels-last; its own
final norm and classifier head are dropped.

Windows: like the original Swin and torchvision, a map smaller than the window is padded to it;
transformers instead shrinks the window to the map, so outputs agree when every stage's map is
larger than the window (stride-32 side > window, i.e. short side >= 256 at window 7).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.swin_transformer import SwinTransformer


class SwinBackbone(nn.Module):
    """``forward(x) -> [c2, c3, c4, c5]`` (NCHW) at strides 4/8/16/32; ``channels``."""

    def __init__(self, embed_dim: int, depths: list[int], heads: list[int], window: int) -> None:
        super().__init__()
        net = SwinTransformer(patch_size=[4, 4], embed_dim=embed_dim, depths=list(depths),
                              num_heads=list(heads), window_size=[window, window],
                              stochastic_depth_prob=0.0)
        f = net.features
        # stage i = (patch embed | merge) + blocks; its output is the stage's feature map
        self.stages = nn.ModuleList(nn.Sequential(f[2 * i], f[2 * i + 1]) for i in range(4))
        self.channels: tuple[int, int, int, int] = tuple(embed_dim * 2 ** i for i in range(4))  # type: ignore[assignment]
        self.norms = nn.ModuleList(nn.LayerNorm(c) for c in self.channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        x = x.contiguous()  # the patch embedding permutes to channels-last itself
        for stage, norm in zip(self.stages, self.norms):
            x = stage(x)  # (B, H, W, C)
            feats.append(norm(x).permute(0, 3, 1, 2).contiguous())
        return feats
