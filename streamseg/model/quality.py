"""Mask quality head: each query's predicted IoU of its own binarised mask with the object it shows.

Why: a tube's AP rank is its score, and Mask2Former's score (class probability x mean foreground
probability inside the mask) ranks badly held-out: with each tube scored by its true IoU the
benchmark's AP rises by ~0.05 (streamseg/weights/README.md). The head learns that IoU the way
Mask Scoring R-CNN and SAM's IoU token do, from the query (normalised, as the class and mask heads
see it) plus three statistics of its mask. Its inputs are detached: the head reads the network
and never shapes it, so it can be trained on its own on top of frozen weights
(``train.trainable: [quality_head]``) and a model keeps every prediction it had without it.
"""
from __future__ import annotations

import torch
from torch import nn

from streamseg.model.layers import MLP

NUM_MASK_STATS = 3


def mask_stats(mask_logits: torch.Tensor, logit_thr: float = 0.0) -> torch.Tensor:
    """(B, Q, h, w) mask logits -> (B, Q, 3): mean foreground probability inside the binarised
    mask (0 if empty), log of its area share, and the share of its pixels whose probability is
    below 0.75 (a soft, unsure mask)."""
    logits = mask_logits.float()
    prob = logits.sigmoid()
    fg = (logits >= logit_thr).float()
    area = fg.sum((-2, -1))
    inside = (prob * fg).sum((-2, -1)) / area.clamp(min=1.0)
    share = area / float(logits.shape[-2] * logits.shape[-1])
    unsure = ((prob < 0.75).float() * fg).sum((-2, -1)) / area.clamp(min=1.0)
    return torch.stack([inside, torch.log(share + 1e-4), unsure], dim=-1)


class QualityHead(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = MLP(dim + NUM_MASK_STATS, dim, 1, 3)

    def forward(self, queries: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
        """queries (B, Q, C) normalised output queries, mask_logits (B, Q, h, w) -> (B, Q)
        IoU logits (sigmoid = predicted IoU)."""
        x = torch.cat([queries.detach().float(), mask_stats(mask_logits.detach())], dim=-1)
        return self.mlp(x.to(self.mlp.layers[0].weight.dtype)).squeeze(-1)
