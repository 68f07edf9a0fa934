"""Shared builders for the kernel tests: random attention problems with the edge cases in the mask."""
from __future__ import annotations

import torch

from streamseg.kernels.reference import naive_masked_attention

# Max abs error allowed against the fp32 oracle, per input dtype (outputs and gradients are O(1)).
TOLERANCE = {torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2, torch.float64: 1e-10}


def make_problem(b: int, h: int, nq: int, nk: int, d: int, dtype: torch.dtype, *, per_head: bool = False,
                 density: float = 0.3, seed: int = 0):
    """q, k, v, mask, grad_out; the mask has one all-False and one all-True row per (batch, head)."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, h, n, d, generator=gen).to(dtype) for n in (nq, nk, nk))
    shape = (b, h, nq, nk) if per_head else (b, nq, nk)
    mask = torch.rand(shape, generator=gen) < density
    mask[..., 0, :] = False                 # empty row -> attends to every key
    if nq > 1:
        mask[..., nq - 1, :] = True         # unmasked row
    grad_out = torch.randn(b, h, nq, d, generator=gen).to(dtype)
    return q, k, v, mask, grad_out


def run_with_grads(fn, q, k, v, mask, grad_out, **kwargs):
    """Output and (dq, dk, dv) of ``fn`` on fresh leaf copies of q, k, v."""
    leaves = [x.detach().clone().requires_grad_() for x in (q, k, v)]
    out = fn(*leaves, mask, **kwargs)
    out.backward(grad_out)
    return out.detach(), tuple(x.grad for x in leaves)


def oracle(q, k, v, mask, grad_out, scale=None):
    """Autograd through the explicit matmul-softmax reference, in fp32."""
    up = [x.float() for x in (q, k, v)]
    return run_with_grads(naive_masked_attention, *up, mask, grad_out.float(), scale=scale)


def max_errors(result, expected) -> list[float]:
    """[forward, dq, dk, dv] max abs errors."""
    (out, grads), (ref_out, ref_grads) = result, expected
    pairs = [(out, ref_out), *zip(grads, ref_grads)]
    return [(a.float() - b.float()).abs().max().item() for a, b in pairs]
