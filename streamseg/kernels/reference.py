"""PyTorch references for masked attention: the CPU path and the oracle the Triton kernels are tested against.

Both functions apply the empty-row rule themselves (a query row whose mask is all False attends to
every key, as Mask2Former does), so they can be called directly with the caller's raw mask.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def resolve_scale(q: torch.Tensor, scale: float | None) -> float:
    """Softmax scale; defaults to 1/sqrt(d)."""
    return float(scale) if scale is not None else 1.0 / math.sqrt(q.shape[-1])


def effective_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B,Nq,Nk) or (B,H,Nq,Nk) bool -> (B,1|H,Nq,Nk) bool with all-False rows turned all-True.

    Without this, an empty row would softmax over nothing (NaN); Mask2Former lets such a query see
    the whole image instead, so that a query whose predicted mask vanished can find its object again.
    """
    if mask.dim() == 3:
        mask = mask[:, None]
    return mask | ~mask.any(dim=-1, keepdim=True)


def masked_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                               scale: float | None = None) -> torch.Tensor:
    """softmax(q k^T * scale, masked) v through PyTorch SDPA with a boolean ``attn_mask``.

    SDPA picks a fused CPU/GPU kernel where it can, so this is also the production CPU path.
    """
    return F.scaled_dot_product_attention(q, k, v, attn_mask=effective_mask(mask),
                                          scale=resolve_scale(q, scale))


def naive_masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                           scale: float | None = None) -> torch.Tensor:
    """Explicit matmul -> masked_fill -> softmax -> matmul: materialises the Nq x Nk score matrix.

    The baseline a hand-written decoder uses; kept as a second oracle and for the benchmark.
    """
    scores = torch.matmul(q, k.transpose(-1, -2)) * resolve_scale(q, scale)
    scores = scores.masked_fill(~effective_mask(mask), float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)
