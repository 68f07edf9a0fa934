"""Masked attention entry point (placeholder: reference only until the Triton kernels land)."""
from __future__ import annotations

import math

import torch


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                     scale: float | None = None) -> torch.Tensor:
    """q (B,H,Nq,d), k/v (B,H,Nk,d), mask (B,Nq,Nk) or (B,H,Nq,Nk) bool, True = may attend.

    A row whose mask is all False attends to every key (Mask2Former's rule).
    """
    if mask.dim() == 3:
        mask = mask[:, None]
    mask = mask | ~mask.any(dim=-1, keepdim=True)
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)
