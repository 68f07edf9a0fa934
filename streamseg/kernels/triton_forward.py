"""Triton forward of masked attention: tiled online softmax over key blocks, fp32 accumulation.

One program owns BLOCK_M query rows of one (batch, head) and one split of the keys; it never holds
more than a BLOCK_M x BLOCK_N tile of scores. It writes the normalised output of its split and the
base-2 log-sum-exp per row; with one split that is the final output, otherwise ``_merge_kernel``
combines the partial results (Nq x d fp32 per split, small next to the K and V they split).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from streamseg.kernels.launch import BlockSizes, autotune_configs, key_splits, prune_configs, resolve_blocks

LOG2E = 1.4426950408889634


@triton.jit
def load_allowed(Bits, Empty, bits_base, empty_base, offs_m, n0, Nq, Nk, NW, BLOCK_N: tl.constexpr):
    """[BLOCK_M, BLOCK_N] bool: key n0 + j may be attended (mask bit, or the row is empty), inside Nq x Nk.

    Loads the BLOCK_N / 32 words of each row once and expands them in registers (bit j of word w is
    key 32 w + j; n0 is a multiple of 32).
    """
    WORDS: tl.constexpr = BLOCK_N // 32
    m_ok = offs_m < Nq
    offs_w = n0 // 32 + tl.arange(0, WORDS)
    words = tl.load(Bits + bits_base + offs_m[:, None] * NW + offs_w[None, :],
                    mask=m_ok[:, None] & (offs_w < NW)[None, :], other=0)
    bits = (words[:, :, None] >> tl.arange(0, 32)[None, None, :]) & 1
    bit = tl.reshape(bits, (offs_m.shape[0], BLOCK_N))
    empty = tl.load(Empty + empty_base + offs_m, mask=m_ok, other=0)
    offs_n = n0 + tl.arange(0, BLOCK_N)
    return ((bit != 0) | (empty != 0)[:, None]) & (offs_n < Nk)[None, :] & m_ok[:, None]


@triton.jit
def _fwd_kernel(Q, K, V, Bits, Empty, O, Lse,
                s_qb, s_qh, s_qm, s_qd,
                s_kb, s_kh, s_kn, s_kd,
                s_vb, s_vh, s_vn, s_vd,
                s_os, s_ob, s_oh, s_om, s_od,
                H, HM, Nq, Nk, NW, chunk, qk_scale,
                HEAD_DIM: tl.constexpr, PRECISION: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    split = tl.program_id(2)
    b = bh // H
    h = bh % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    m_ok = offs_m < Nq

    q = tl.load(Q + b * s_qb + h * s_qh + offs_m[:, None] * s_qm + offs_d[None, :] * s_qd,
                mask=m_ok[:, None], other=0.0)
    k_base = K + b * s_kb + h * s_kh
    v_base = V + b * s_vb + h * s_vh
    hm = h % HM  # HM is 1 (mask shared by heads) or H
    bits_base = (b * HM + hm) * Nq * NW
    empty_base = (b * HM + hm) * Nq

    # Finite start so that a tile where a row sees no key gives exp2(-inf - m) = 0, never NaN.
    m_i = tl.full([BLOCK_M], -1.0e30, dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    start = split * chunk
    stop = tl.minimum(start + chunk, Nk)
    for n0 in range(start, stop, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_ok = offs_n < Nk
        k = tl.load(k_base + offs_n[:, None] * s_kn + offs_d[None, :] * s_kd, mask=n_ok[:, None], other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
        allowed = load_allowed(Bits, Empty, bits_base, empty_base, offs_m, n0, Nq, Nk, NW, BLOCK_N)
        s = tl.where(allowed, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.math.exp2(s - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_base + offs_n[:, None] * s_vn + offs_d[None, :] * s_vd, mask=n_ok[:, None], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new

    has_keys = l_i > 0.0
    out = acc / tl.where(has_keys, l_i, 1.0)[:, None]
    lse = tl.where(has_keys, m_i + tl.math.log2(tl.where(has_keys, l_i, 1.0)), float("-inf"))
    o_ptrs = O + split * s_os + b * s_ob + h * s_oh + offs_m[:, None] * s_om + offs_d[None, :] * s_od
    tl.store(o_ptrs, out.to(O.dtype.element_ty), mask=m_ok[:, None])
    tl.store(Lse + ((split * tl.num_programs(1) + bh) * Nq) + offs_m, lse, mask=m_ok)


@triton.jit
def _merge_kernel(OP, LseP, O, Lse, s_ps, s_pb, s_ph, s_pm, s_pd, s_ob, s_oh, s_om, s_od, S, H, Nq,
                  HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr):
    """out = sum_s 2^(lse_s - lse) o_s with lse = log2 sum_s 2^lse_s, accumulated online over splits.
    A split where a row saw no key has lse_s = -inf and weight 0."""
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    m_ok = offs_m < Nq
    m_i = tl.full([BLOCK_M], -1.0e30, dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for s in range(0, S):
        lse_s = tl.load(LseP + (s * tl.num_programs(1) + bh) * Nq + offs_m, mask=m_ok, other=float("-inf"))
        o_s = tl.load(OP + s * s_ps + b * s_pb + h * s_ph + offs_m[:, None] * s_pm + offs_d[None, :] * s_pd,
                      mask=m_ok[:, None], other=0.0)
        m_new = tl.maximum(m_i, lse_s)
        alpha = tl.math.exp2(m_i - m_new)
        w = tl.math.exp2(lse_s - m_new)
        l_i = l_i * alpha + w
        acc = acc * alpha[:, None] + w[:, None] * o_s
        m_i = m_new
    l_safe = tl.where(l_i > 0.0, l_i, 1.0)
    tl.store(O + b * s_ob + h * s_oh + offs_m[:, None] * s_om + offs_d[None, :] * s_od,
             (acc / l_safe[:, None]).to(O.dtype.element_ty), mask=m_ok[:, None])
    tl.store(Lse + bh * Nq + offs_m, m_i + tl.math.log2(l_safe), mask=m_ok)


_fwd_autotuned = triton.autotune(configs=autotune_configs(), key=["Nq", "Nk", "HEAD_DIM", "PRECISION"],
                                prune_configs_by={"early_config_prune": prune_configs})(_fwd_kernel)


def dot_precision(dtype: torch.dtype) -> str:
    """fp32 inputs follow torch's TF32 switch for matmuls: off (the default) -> 3xTF32, which is
    accurate to ~fp32 on the tensor cores (plain fp32 "ieee" dots compile into minutes of LLVM time
    for 64-wide tiles and run on the CUDA cores); on -> TF32. Ignored for fp16/bf16."""
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "tf32x3"
    return "tf32"


def attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bits: torch.Tensor,
                      empty: torch.Tensor, scale: float,
                      blocks: BlockSizes | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns out (B,H,Nq,d) in q's dtype and lse (B,H,Nq) fp32 in base 2 of the scaled scores."""
    B, H, Nq, D = q.shape
    Nk = k.shape[2]
    HM = bits.shape[1]
    NW = bits.shape[3]
    blocks = resolve_blocks(blocks)
    chunk, splits = key_splits(blocks, Nq, Nk, B * H, q.device)

    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    if splits == 1:
        o_part = out.unsqueeze(0)
    else:
        o_part = torch.empty((splits, B, H, Nq, D), dtype=torch.float32, device=q.device)
    lse_part = torch.empty((splits, B, H, Nq), dtype=torch.float32, device=q.device)
    args = (q, k, v, bits, empty, o_part, lse_part, *q.stride(), *k.stride(), *v.stride(), *o_part.stride(),
            H, HM, Nq, Nk, NW, chunk, scale * LOG2E)
    meta = dict(HEAD_DIM=D, PRECISION=dot_precision(q.dtype))
    if blocks.explicit:
        grid = (triton.cdiv(Nq, blocks.block_m), B * H, splits)
        _fwd_kernel[grid](*args, **meta, BLOCK_M=blocks.block_m, BLOCK_N=blocks.block_n,
                          num_warps=blocks.num_warps, num_stages=blocks.num_stages)
    else:
        _fwd_autotuned[lambda m: (triton.cdiv(Nq, m["BLOCK_M"]), B * H, splits)](*args, **meta)
    if splits == 1:
        return out, lse_part[0]
    return merge_splits(o_part, lse_part, out)


def merge_splits(o_part: torch.Tensor, lse_part: torch.Tensor,
                 out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine per-split results into ``out``; returns (out, lse). Partials are read once."""
    S, B, H, Nq, D = o_part.shape
    lse = torch.empty((B, H, Nq), dtype=torch.float32, device=out.device)
    block_m = 32 if D <= 128 else 16
    _merge_kernel[(triton.cdiv(Nq, block_m), B * H)](o_part, lse_part, out, lse, *o_part.stride(), *out.stride(),
                                                      S, H, Nq, HEAD_DIM=D, BLOCK_M=block_m)
    return out, lse
