"""DRAM-traffic model of one masked-attention call: Triton kernels vs SDPA with attn_mask vs naive.

``python -m kernels.traffic`` prints bytes per call and the speedup they predict on an H100-class
GPU at the decoder's shapes (the arithmetic is in README.md). The model counts every tensor a kernel
reads or writes once; "worst" assumes a mask shared by the heads is re-read from DRAM for every
head, "best" that the L2 cache serves the re-reads.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from streamseg.bench.kernels import HEAD_DIM, HEADS, shapes

ELEM = 2          # fp16 / bf16 bytes
H100_SMS = 132
H100_TB_S = 3.35  # HBM3, H100 SXM


@dataclass
class Traffic:
    fwd_worst: float
    fwd_best: float
    bwd_worst: float
    bwd_best: float


def triton_splits(nq: int, nk: int, sms: int = H100_SMS) -> int:
    """The key-split count kernels.launch picks on a GPU with ``sms`` SMs (BLOCK_M 64)."""
    from streamseg.kernels.launch import MIN_SPLIT_KEYS, SPLIT_UNIT, split_chunk

    rows = -(-nq // 64) * HEADS
    wanted = max(1, -(-2 * sms // rows))
    splits = max(1, min(wanted, -(-nk // max(SPLIT_UNIT, MIN_SPLIT_KEYS))))
    return split_chunk(nk, splits, SPLIT_UNIT)[1]


def triton_traffic(nq: int, nk: int) -> Traffic:
    e, h, d = ELEM, HEADS, HEAD_DIM
    kv = 2 * h * nk * d * e
    qo = 2 * h * nq * d * e
    m = nq * nk                      # mask elements (bool: 1 byte each)
    pack = m + m / 8 + m / 8         # read bool, write bits, read bits for the empty-row flags
    s = triton_splits(nq, nk)
    partials = 0 if s == 1 else 2 * s * h * nq * (d + 1) * 4   # written by the splits, read by the merge
    fwd = kv + qo + pack + partials
    bwd_small = 3 * h * nq * d * e + 2 * h * nq * 4             # O, dO, dQ; lse, delta
    dq_partials = 2 * s * h * nq * d * 4
    bwd = 2 * kv + kv + bwd_small + dq_partials                 # dK/dV pass: read K,V write dK,dV; dQ pass: K,V
    return Traffic(fwd + h * m / 8, fwd + m / 8, bwd + 2 * h * m / 8, bwd + 2 * m / 8)


def sdpa_traffic(nq: int, nk: int) -> Traffic:
    """F.scaled_dot_product_attention(attn_mask=mask | empty-row) on the memory-efficient kernel."""
    e, h, d = ELEM, HEADS, HEAD_DIM
    kv = 2 * h * nk * d * e
    qo = 2 * h * nq * d * e
    m = nq * nk
    rule = 3 * m                     # any(-1) reads the mask; "|" reads it and writes a new one
    bias = (1 + 1) + e + (1 + e)     # logical_not r/w, zeros_like w, masked_fill_ r mask + w bias
    fwd = kv + qo + rule + bias * m
    bwd = 2 * kv + 3 * h * nq * d * e  # read K,V, write dK,dV (lower bound: no re-read of K,V for dQ)
    return Traffic(fwd + h * m * e, fwd + m * e, bwd + h * m * e, bwd + m * e)


def naive_traffic(nq: int, nk: int) -> Traffic:
    """matmul -> *scale -> masked_fill -> softmax -> matmul, each a separate kernel over H x Nq x Nk."""
    e, h, d = ELEM, HEADS, HEAD_DIM
    kv = 2 * h * nk * d * e
    qo = 2 * h * nq * d * e
    m = nq * nk
    s = h * m * e                    # one pass over the scores
    fwd = kv + qo + 3 * m + 2 * m + s * (1 + 2 + 2 + 2 + 1)   # rule, ~mask, S w, scale r/w, fill r/w, softmax r/w, P r
    # dP = dO V^T (w), dV = P^T dO (r P), softmax bwd (r P, r dP, w dS), fill bwd (r/w), scale bwd (r/w),
    # dQ = dS K and dK = dS^T Q (r dS twice), plus K, V reads and dK, dV writes.
    bwd = s * (1 + 1 + 3 + 2 + 2 + 2) + 2 * kv + 3 * h * nq * d * e
    return Traffic(fwd + h * m, fwd + m, bwd + h * m, bwd + m)


def main() -> int:
    print(f"DRAM bytes per call (MB), fp16, batch 1, {HEADS} heads of {HEAD_DIM}; worst = mask re-read per head, "
          f"best = L2 serves re-reads; speedup = bytes ratio (memory-bound, H100 {H100_TB_S} TB/s)")
    print(f"{'frame':>6} {'s':>3} {'Nq':>4} {'Nk':>6} | {'fwd MB triton':>14} {'sdpa':>11} {'naive':>13} | "
          f"{'x vs sdpa':>10} {'x vs naive':>11} | {'bwd MB triton':>14} {'sdpa':>11} | {'t_fwd us':>8}")
    for frame, stride, nq, nk in shapes():
        t, r, n = triton_traffic(nq, nk), sdpa_traffic(nq, nk), naive_traffic(nq, nk)
        mb = lambda a, b: f"{a / 1e6:5.1f}-{b / 1e6:5.1f}"  # noqa: E731
        print(f"{frame:>6} {stride:>3} {nq:>4} {nk:>6} | {mb(t.fwd_best, t.fwd_worst):>14} "
              f"{mb(r.fwd_best, r.fwd_worst):>11} {mb(n.fwd_best, n.fwd_worst):>13} | "
              f"{r.fwd_best / t.fwd_best:4.1f}-{r.fwd_worst / t.fwd_worst:4.1f} "
              f"{n.fwd_best / t.fwd_best:5.1f}-{n.fwd_worst / t.fwd_worst:4.1f} | "
              f"{mb(t.bwd_best, t.bwd_worst):>14} {mb(r.bwd_best, r.bwd_worst):>11} | "
              f"{t.fwd_best / (H100_TB_S * 1e12) * 1e6:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
