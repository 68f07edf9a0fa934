"""Max abs error of masked attention, forward and backward, per dtype: ``python -m kernels.accuracy``.

Errors are against a float64 matmul-softmax oracle fed the same dtype-rounded inputs (so they
measure the implementation, not the input rounding), on a few decoder-like shapes with ragged
tails, empty and full mask rows. Without CUDA the Triton kernels run in Triton's interpreter (this module
sets TRITON_INTERPRET=1 before they are defined) and bf16 is measured through the reference only,
because the interpreter's bf16 ``tl.dot`` is wrong.
"""
from __future__ import annotations

import os
import sys

SHAPES = [(1, 8, 100, 920, 32), (2, 2, 37, 300, 32), (1, 2, 70, 129, 64)]  # (B, H, Nq, Nk, d)


def measure(fn, dtype, shapes=SHAPES, device="cpu") -> list[float]:
    """[forward, dq, dk, dv] max abs error over ``shapes``."""
    import torch

    from streamseg.kernels.reference import naive_masked_attention

    worst = [0.0] * 4
    for seed, (b, h, nq, nk, d) in enumerate(shapes):
        gen = torch.Generator().manual_seed(seed)
        q, k, v, g = (torch.randn(b, h, n, d, generator=gen, dtype=torch.float64) for n in (nq, nk, nk, nq))
        mask = torch.rand(b, nq, nk, generator=gen) < 0.3
        mask[:, 0] = False
        mask[:, -1] = True
        # The oracle sees the same dtype-rounded inputs: the figures are the kernels' own error.
        q, k, v, g = (x.to(dtype).double() for x in (q, k, v, g))
        results = []
        for f, cast in ((fn, dtype), (naive_masked_attention, torch.float64)):
            leaves = [x.to(device, cast).requires_grad_() for x in (q, k, v)]
            out = f(leaves[0], leaves[1], leaves[2], mask.to(device))
            out.backward(g.to(device, cast))
            results.append([out.detach().double().cpu()] + [x.grad.double().cpu() for x in leaves if x.grad is not None])
        worst = [max(w, (a - e).abs().max().item()) for w, a, e in zip(worst, *results)]
    return worst


def main() -> int:
    import torch

    cuda = torch.cuda.is_available()
    if not cuda:
        os.environ["TRITON_INTERPRET"] = "1"  # before kernels.triton_attention defines the kernels
    from streamseg.kernels.reference import masked_attention_reference
    from streamseg.kernels.triton_attention import triton_masked_attention

    device = "cuda" if cuda else "cpu"
    where = "GPU" if cuda else "Triton interpreter (CPU)"
    print(f"max abs error vs float64 oracle, shapes (B,H,Nq,Nk,d) {SHAPES}; Triton on {where}")
    print(f"{'path':<10} {'dtype':<9} {'forward':>9} {'dq':>9} {'dk':>9} {'dv':>9}")
    rows = [("triton", torch.float32), ("triton", torch.float16), ("triton" if cuda else "reference", torch.bfloat16),
            ("reference", torch.float32), ("reference", torch.float16)]
    for path, dtype in rows:
        fn = triton_masked_attention if path == "triton" else masked_attention_reference
        errs = measure(fn, dtype, device=device)
        print(f"{path:<10} {str(dtype).removeprefix('torch.'):<9} " + " ".join(f"{e:9.2e}" for e in errs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
