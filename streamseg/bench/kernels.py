"""``streamseg bench kernels``: Triton masked attention vs SDPA with ``attn_mask`` vs naive matmul-softmax.

Shapes are the decoder's: 8 heads of 32, Nq = 100 and 200 queries, Nk = H x W of the stride-32/16/8
feature maps of 720p and 1080p frames, batch 1, fp16. Prints effective TB/s and TFLOP/s against the
device's peak; never asserts anything. Needs CUDA: without it, says so and exits 0.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

HEADS, HEAD_DIM = 8, 32
QUERIES = (100, 200)
FRAMES = {"720p": (720, 1280), "1080p": (1080, 1920)}
STRIDES = (32, 16, 8)
# Dense fp16 tensor-core FLOPs per SM per clock (fp32 accumulation) by compute capability.
TENSOR_FLOPS_PER_SM_CLOCK = {(7, 0): 1024, (7, 5): 512, (8, 0): 2048, (8, 6): 1024, (8, 7): 1024,
                             (8, 9): 512, (9, 0): 4096, (10, 0): 8192}


@dataclass
class Result:
    frame: str
    stride: int
    nq: int
    nk: int
    impl: str
    pass_: str
    ms: float
    tb_s: float
    tflop_s: float
    pct_peak_bw: float
    pct_peak_flops: float | None
    max_abs_err: float


def shapes() -> list[tuple[str, int, int, int]]:
    """(frame, stride, Nq, Nk) with Nk = ceil(h/s) * ceil(w/s), as the backbone's feature maps."""
    out = []
    for frame, (h, w) in FRAMES.items():
        for s in STRIDES:
            for nq in QUERIES:
                out.append((frame, s, nq, -(-h // s) * -(-w // s)))
    return out


def device_peaks(device) -> tuple[float, float | None]:
    """(bytes/s from memory clock x bus width, dense fp16 tensor FLOP/s or None if unknown)."""
    import torch

    p = torch.cuda.get_device_properties(device)
    bandwidth = p.memory_clock_rate * 1e3 * 2 * p.memory_bus_width / 8
    per_clock = TENSOR_FLOPS_PER_SM_CLOCK.get((p.major, p.minor))
    flops = None if per_clock is None else p.multi_processor_count * p.clock_rate * 1e3 * per_clock
    return bandwidth, flops


def useful_bytes(nq: int, nk: int, backward: bool) -> float:
    """Bytes any implementation must move: q, k, v, out (fp16) and the bool mask once;
    the backward adds dO, dq, dk, dv and re-reads q, k, v, out and the mask."""
    qo = 2 * HEADS * nq * HEAD_DIM * 2
    kv = 2 * HEADS * nk * HEAD_DIM * 2
    fwd = qo + kv + nq * nk
    return fwd + (2 * (qo + kv) + nq * nk + qo if backward else 0)


def flops(nq: int, nk: int, backward: bool) -> float:
    """Two matmuls forward (4 Nq Nk d per head); backward recomputes one and does four more (x2.5)."""
    fwd = 4 * HEADS * nq * nk * HEAD_DIM
    return fwd * (3.5 if backward else 1.0)


def run_cuda() -> tuple[dict, list[Result]]:
    import torch
    import triton.testing

    from streamseg.kernels.reference import masked_attention_reference, naive_masked_attention
    from streamseg.kernels.triton_attention import triton_masked_attention

    device = torch.device("cuda")
    peak_bw, peak_flops = device_peaks(device)
    info = {"device": torch.cuda.get_device_name(device), "peak_tb_s": peak_bw / 1e12,
            "peak_fp16_tflop_s": None if peak_flops is None else peak_flops / 1e12}
    impls = {"triton": triton_masked_attention, "sdpa": masked_attention_reference, "naive": naive_masked_attention}
    results = []
    for frame, stride, nq, nk in shapes():
        gen = torch.Generator(device=device).manual_seed(0)
        q, k, v = (torch.randn(1, HEADS, n, HEAD_DIM, device=device, dtype=torch.float16, generator=gen)
                   for n in (nq, nk, nk))
        mask = torch.rand(1, nq, nk, device=device, generator=gen) < 0.3
        mask[:, :5] = False  # a few empty rows, as after a vanished prediction
        grad = torch.randn_like(q)
        expected = naive_masked_attention(q.float(), k.float(), v.float(), mask)
        for name, fn in impls.items():
            err = (fn(q, k, v, mask).float() - expected).abs().max().item()
            for backward in (False, True):
                leaves = [x.clone().requires_grad_(backward) for x in (q, k, v)]

                def step():
                    out = fn(*leaves, mask)
                    if backward:
                        out.backward(grad)

                ms = triton.testing.do_bench(step, grad_to_none=leaves if backward else None,
                                             return_mode="median")
                tb_s = useful_bytes(nq, nk, backward) / (ms * 1e-3) / 1e12
                tf_s = flops(nq, nk, backward) / (ms * 1e-3) / 1e12
                results.append(Result(frame, stride, nq, nk, name, "fwd+bwd" if backward else "fwd", ms, tb_s,
                                      tf_s, 100 * tb_s * 1e12 / peak_bw,
                                      None if peak_flops is None else 100 * tf_s * 1e12 / peak_flops, err))
    return info, results


def print_table(info: dict, results: list[Result]) -> None:
    print(f"device {info['device']}: peak {info['peak_tb_s']:.2f} TB/s, "
          f"fp16 tensor peak {info['peak_fp16_tflop_s'] or float('nan'):.0f} TFLOP/s (estimated from clocks)")
    print(f"{'frame':>6} {'s':>3} {'Nq':>4} {'Nk':>6} {'impl':>7} {'pass':>8} {'ms':>8} {'TB/s':>6} "
          f"{'%bw':>5} {'TFLOP/s':>8} {'%flop':>6} {'maxerr':>8}")
    for r in results:
        pf = float("nan") if r.pct_peak_flops is None else r.pct_peak_flops
        print(f"{r.frame:>6} {r.stride:>3} {r.nq:>4} {r.nk:>6} {r.impl:>7} {r.pass_:>8} {r.ms:8.3f} "
              f"{r.tb_s:6.2f} {r.pct_peak_bw:5.1f} {r.tflop_s:8.1f} {pf:6.1f} {r.max_abs_err:8.1e}")
    by_key = {(r.frame, r.stride, r.nq, r.pass_, r.impl): r.ms for r in results}
    print("speedup of triton (median ms ratio):")
    for (frame, stride, nq, pass_, impl), ms in by_key.items():
        if impl == "triton":
            sdpa, naive = by_key[(frame, stride, nq, pass_, "sdpa")], by_key[(frame, stride, nq, pass_, "naive")]
            print(f"  {frame} s{stride} Nq {nq} {pass_}: x{sdpa / ms:.2f} vs SDPA, x{naive / ms:.2f} vs naive")


def main(json_output: bool) -> int:
    import torch

    if not torch.cuda.is_available():
        reason = "kernels bench needs CUDA: no CUDA device here, nothing measured"
        print(json.dumps({"cuda": False, "reason": reason, "results": []}) if json_output else reason)
        return 0
    info, results = run_cuda()
    if json_output:
        rows = [{("pass" if k == "pass_" else k): v for k, v in asdict(r).items()} for r in results]
        print(json.dumps({"cuda": True, **info, "results": rows}))
    else:
        print_table(info, results)
    return 0
