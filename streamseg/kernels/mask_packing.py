"""Bit-packing of the boolean attention mask (32 keys per int32 word), in Triton and in PyTorch.

The attention kernels read the mask once per head and once more in each backward kernel; packed,
that is Nq/8 bytes per key instead of Nq (see README.md, "Mask format").
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _pack_kernel(Mask, Bits, n_rows, Nq, HM, Nk, NW,
                 s_mb, s_mh, s_mq, s_mk,
                 BLOCK_R: tl.constexpr, BLOCK_W: tl.constexpr):
    """Rows are (b, h, q) triples of the mask; each program packs BLOCK_R rows x BLOCK_W words."""
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    q = rows % Nq
    h = (rows // Nq) % HM
    b = rows // (Nq * HM)
    keys = tl.program_id(1) * BLOCK_W * 32 + tl.arange(0, BLOCK_W * 32)
    ptrs = Mask + b[:, None] * s_mb + h[:, None] * s_mh + q[:, None] * s_mq + keys[None, :] * s_mk
    ok = (rows[:, None] < n_rows) & (keys[None, :] < Nk)
    bit = tl.load(ptrs, mask=ok, other=0).to(tl.int32)
    shifted = bit << (keys[None, :] % 32)
    words = tl.sum(tl.reshape(shifted, (BLOCK_R, BLOCK_W, 32)), axis=2)
    widx = tl.program_id(1) * BLOCK_W + tl.arange(0, BLOCK_W)
    tl.store(Bits + rows[:, None] * NW + widx[None, :], words,
             mask=(rows[:, None] < n_rows) & (widx[None, :] < NW))


def pack_mask(mask: torch.Tensor, block_rows: int = 32, block_words: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,HM,Nq,Nk) bool -> bits (B,HM,Nq,ceil(Nk/32)) int32 and empty (B,HM,Nq) int8.

    Bit j of word w is key 32*w + j; keys past Nk are 0. ``empty`` marks rows with no True key:
    the kernels let those rows attend to every key (the empty-row rule).
    """
    b, hm, nq, nk = mask.shape
    nw = -(-nk // 32)
    bits = torch.empty((b, hm, nq, nw), dtype=torch.int32, device=mask.device)
    src = mask.view(torch.uint8)
    n_rows = b * hm * nq
    grid = (triton.cdiv(n_rows, block_rows), triton.cdiv(nw, block_words))
    _pack_kernel[grid](src, bits, n_rows, nq, hm, nk, nw, *src.stride(),
                       BLOCK_R=block_rows, BLOCK_W=block_words)
    empty = (bits == 0).all(dim=-1).to(torch.int8)
    return bits, empty


def pack_mask_torch(mask: torch.Tensor) -> torch.Tensor:
    """PyTorch version of the packing (the oracle for ``pack_mask``)."""
    nk = mask.shape[-1]
    nw = -(-nk // 32)
    padded = torch.nn.functional.pad(mask.to(torch.int64), (0, nw * 32 - nk))
    shifts = torch.arange(32, device=mask.device, dtype=torch.int64)
    words = (padded.unflatten(-1, (nw, 32)) << shifts).sum(-1)
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)
