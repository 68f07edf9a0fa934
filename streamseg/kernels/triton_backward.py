"""Triton backward of masked attention (FlashAttention-2 scheme): dK/dV per key block, dQ per query block.

The probabilities are recomputed from q, k and the forward's log-sum-exp instead of being stored,
so nothing of size Nq x Nk is ever written. With ds = p * (dp - delta) and delta = rowsum(dO * O):
dV = p^T dO, dK = scale * ds^T Q, dQ = scale * ds K.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from streamseg.kernels.launch import BlockSizes, autotune_configs, key_splits, prune_configs, resolve_blocks
from streamseg.kernels.triton_forward import LOG2E, dot_precision, load_allowed


@triton.jit
def _delta_kernel(O, DO, Delta, s_ob, s_oh, s_om, s_od, s_gb, s_gh, s_gm, s_gd, H, Nq,
                  HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr):
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    ok = (offs_m < Nq)[:, None]
    o = tl.load(O + b * s_ob + h * s_oh + offs_m[:, None] * s_om + offs_d[None, :] * s_od, mask=ok, other=0.0)
    do = tl.load(DO + b * s_gb + h * s_gh + offs_m[:, None] * s_gm + offs_d[None, :] * s_gd, mask=ok, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), axis=1)
    tl.store(Delta + bh * Nq + offs_m, delta, mask=offs_m < Nq)


@triton.jit
def _dkdv_kernel(Q, K, V, DO, Bits, Empty, Lse, Delta, DK, DV,
                 s_qb, s_qh, s_qm, s_qd,
                 s_kb, s_kh, s_kn, s_kd,
                 s_vb, s_vh, s_vn, s_vd,
                 s_gb, s_gh, s_gm, s_gd,
                 H, HM, Nq, Nk, NW, qk_scale, scale,
                 HEAD_DIM: tl.constexpr, PRECISION: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """One program: BLOCK_N keys of one (b, h); loops over all Nq query rows (few in the decoder)."""
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    n0 = tl.program_id(0) * BLOCK_N
    offs_n = n0 + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    n_ok = (offs_n < Nk)[:, None]
    k = tl.load(K + b * s_kb + h * s_kh + offs_n[:, None] * s_kn + offs_d[None, :] * s_kd, mask=n_ok, other=0.0)
    v = tl.load(V + b * s_vb + h * s_vh + offs_n[:, None] * s_vn + offs_d[None, :] * s_vd, mask=n_ok, other=0.0)
    hm = h % HM
    bits_base = (b * HM + hm) * Nq * NW
    empty_base = (b * HM + hm) * Nq
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    for m0 in range(0, Nq, BLOCK_M):
        offs_m = m0 + tl.arange(0, BLOCK_M)
        m_ok = offs_m < Nq
        q = tl.load(Q + b * s_qb + h * s_qh + offs_m[:, None] * s_qm + offs_d[None, :] * s_qd,
                    mask=m_ok[:, None], other=0.0)
        do = tl.load(DO + b * s_gb + h * s_gh + offs_m[:, None] * s_gm + offs_d[None, :] * s_gd,
                     mask=m_ok[:, None], other=0.0)
        lse = tl.load(Lse + bh * Nq + offs_m, mask=m_ok, other=0.0)
        delta = tl.load(Delta + bh * Nq + offs_m, mask=m_ok, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
        allowed = load_allowed(Bits, Empty, bits_base, empty_base, offs_m, n0, Nq, Nk, NW, BLOCK_N)
        p = tl.where(allowed, tl.math.exp2(s - lse[:, None]), 0.0)
        dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PRECISION)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=PRECISION)
    dk = dk * scale
    tl.store(DK + b * s_kb + h * s_kh + offs_n[:, None] * s_kn + offs_d[None, :] * s_kd,
             dk.to(DK.dtype.element_ty), mask=n_ok)
    tl.store(DV + b * s_vb + h * s_vh + offs_n[:, None] * s_vn + offs_d[None, :] * s_vd,
             dv.to(DV.dtype.element_ty), mask=n_ok)


@triton.jit
def _dq_kernel(Q, K, V, DO, Bits, Empty, Lse, Delta, DQ,
               s_qb, s_qh, s_qm, s_qd,
               s_kb, s_kh, s_kn, s_kd,
               s_vb, s_vh, s_vn, s_vd,
               s_gb, s_gh, s_gm, s_gd,
               s_dqs, s_dqb, s_dqh, s_dqm, s_dqd,
               H, HM, Nq, Nk, NW, chunk, qk_scale, scale,
               HEAD_DIM: tl.constexpr, PRECISION: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """One program: BLOCK_M rows of one (b, h) over one split of the keys; partial dQ in fp32."""
    bh = tl.program_id(1)
    split = tl.program_id(2)
    b = bh // H
    h = bh % H
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    m_ok = offs_m < Nq
    q = tl.load(Q + b * s_qb + h * s_qh + offs_m[:, None] * s_qm + offs_d[None, :] * s_qd,
                mask=m_ok[:, None], other=0.0)
    do = tl.load(DO + b * s_gb + h * s_gh + offs_m[:, None] * s_gm + offs_d[None, :] * s_gd,
                 mask=m_ok[:, None], other=0.0)
    lse = tl.load(Lse + bh * Nq + offs_m, mask=m_ok, other=0.0)
    delta = tl.load(Delta + bh * Nq + offs_m, mask=m_ok, other=0.0)
    hm = h % HM
    bits_base = (b * HM + hm) * Nq * NW
    empty_base = (b * HM + hm) * Nq
    k_base = K + b * s_kb + h * s_kh
    v_base = V + b * s_vb + h * s_vh
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    start = split * chunk
    stop = tl.minimum(start + chunk, Nk)
    for n0 in range(start, stop, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_ok = (offs_n < Nk)[:, None]
        k = tl.load(k_base + offs_n[:, None] * s_kn + offs_d[None, :] * s_kd, mask=n_ok, other=0.0)
        v = tl.load(v_base + offs_n[:, None] * s_vn + offs_d[None, :] * s_vd, mask=n_ok, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
        allowed = load_allowed(Bits, Empty, bits_base, empty_base, offs_m, n0, Nq, Nk, NW, BLOCK_N)
        p = tl.where(allowed, tl.math.exp2(s - lse[:, None]), 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
    dq = dq * scale
    tl.store(DQ + split * s_dqs + b * s_dqb + h * s_dqh + offs_m[:, None] * s_dqm + offs_d[None, :] * s_dqd,
             dq, mask=m_ok[:, None])


_tune_key = ["Nq", "Nk", "HEAD_DIM", "PRECISION"]
_prune = {"early_config_prune": prune_configs}
_dkdv_autotuned = triton.autotune(configs=autotune_configs(), key=_tune_key, prune_configs_by=_prune)(_dkdv_kernel)
_dq_autotuned = triton.autotune(configs=autotune_configs(), key=_tune_key, prune_configs_by=_prune)(_dq_kernel)


def attention_backward(do: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                       lse: torch.Tensor, bits: torch.Tensor, empty: torch.Tensor, scale: float,
                       blocks: BlockSizes | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dq, dk, dv in the inputs' dtype (fp32 accumulation inside the kernels)."""
    B, H, Nq, D = q.shape
    Nk = k.shape[2]
    HM, NW = bits.shape[1], bits.shape[3]
    blocks = resolve_blocks(blocks)
    meta = dict(HEAD_DIM=D, PRECISION=dot_precision(q.dtype))
    qk_scale = scale * LOG2E

    delta = torch.empty((B, H, Nq), dtype=torch.float32, device=q.device)
    delta_block = 64 if D <= 128 else 32
    _delta_kernel[(triton.cdiv(Nq, delta_block), B * H)](out, do, delta, *out.stride(), *do.stride(), H, Nq,
                                                          HEAD_DIM=D, BLOCK_M=delta_block)
    lse = lse.contiguous()
    common = (*q.stride(), *k.stride(), *v.stride(), *do.stride())

    dk = torch.empty_like(k)
    dv = torch.empty_like(v)
    if dk.stride() != k.stride() or dv.stride() != v.stride():
        k, v = k.contiguous(), v.contiguous()
        dk, dv = torch.empty_like(k), torch.empty_like(v)
        common = (*q.stride(), *k.stride(), *v.stride(), *do.stride())
    dkdv_args = (q, k, v, do, bits, empty, lse, delta, dk, dv, *common, H, HM, Nq, Nk, NW, qk_scale, scale)
    if blocks.explicit:
        grid = (triton.cdiv(Nk, blocks.block_n), B * H)
        _dkdv_kernel[grid](*dkdv_args, **meta, BLOCK_M=blocks.block_m, BLOCK_N=blocks.block_n,
                           num_warps=blocks.num_warps, num_stages=blocks.num_stages)
    else:
        _dkdv_autotuned[lambda m: (triton.cdiv(Nk, m["BLOCK_N"]), B * H)](*dkdv_args, **meta)

    chunk, splits = key_splits(blocks, Nq, Nk, B * H, q.device)
    dq_part = torch.empty((splits, B, H, Nq, D), dtype=torch.float32, device=q.device)
    dq_args = (q, k, v, do, bits, empty, lse, delta, dq_part, *common, *dq_part.stride(),
               H, HM, Nq, Nk, NW, chunk, qk_scale, scale)
    if blocks.explicit:
        grid_dq = (triton.cdiv(Nq, blocks.block_m), B * H, splits)
        _dq_kernel[grid_dq](*dq_args, **meta, BLOCK_M=blocks.block_m, BLOCK_N=blocks.block_n,
                         num_warps=blocks.num_warps, num_stages=blocks.num_stages)
    else:
        _dq_autotuned[lambda m: (triton.cdiv(Nq, m["BLOCK_M"]), B * H, splits)](*dq_args, **meta)
    dq = dq_part[0] if splits == 1 else dq_part.sum(0)
    return dq.to(q.dtype), dk, dv
