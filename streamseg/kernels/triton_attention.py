"""``triton_masked_attention``: the Triton kernels behind a ``torch.autograd.Function``.

Importing this module defines the @triton.jit kernels, so ``TRITON_INTERPRET=1`` must be set before
it is imported for the kernels to run on CPU tensors (``kernels.masked_attention`` imports it lazily).
"""
from __future__ import annotations

import torch

from streamseg.kernels.launch import SUPPORTED_HEAD_DIMS, BlockSizes
from streamseg.kernels.mask_packing import pack_mask
from streamseg.kernels.reference import resolve_scale
from streamseg.kernels.triton_backward import attention_backward
from streamseg.kernels.triton_forward import attention_forward


class _MaskedAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, mask, scale: float, blocks: BlockSizes | None):
        bits, empty = pack_mask(mask)
        out, lse = attention_forward(q, k, v, bits, empty, scale, blocks)
        ctx.save_for_backward(q, k, v, out, lse, bits, empty)
        ctx.scale = scale
        ctx.blocks = blocks
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse, bits, empty = ctx.saved_tensors
        dq, dk, dv = attention_backward(grad_out, q, k, v, out, lse, bits, empty, ctx.scale, ctx.blocks)
        return dq, dk, dv, None, None, None


def check_triton_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.shape[-1] not in SUPPORTED_HEAD_DIMS:
        raise ValueError(f"Triton masked attention needs head dim in {SUPPORTED_HEAD_DIMS}, got {q.shape[-1]}")
    if q.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"Triton masked attention takes fp32/fp16/bf16, got {q.dtype}")


def triton_masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                            scale: float | None = None, blocks: BlockSizes | None = None) -> torch.Tensor:
    """Same contract as ``kernels.masked_attention``; ``blocks`` overrides autotuning (tests use it).

    mask: (B,Nq,Nk) or (B,H,Nq,Nk) bool, already validated. The empty-row rule is applied inside the
    kernels from a per-row flag computed while packing the mask.
    """
    check_triton_inputs(q, k, v)
    if mask.dim() == 3:
        mask = mask[:, None]
    return _MaskedAttention.apply(q, k, v, mask, resolve_scale(q, scale), blocks)
