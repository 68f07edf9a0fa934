"""``masked_attention``: the model's entry point; picks the Triton kernels or the PyTorch reference.

Dispatch: CUDA tensors -> Triton, CPU tensors -> reference. ``STREAMSEG_KERNELS=triton|reference``
(default ``auto``) forces one; forcing Triton on CPU tensors needs ``TRITON_INTERPRET=1`` in the
environment before the first call (the kernels are defined lazily, on first use).
"""
from __future__ import annotations

import os

import torch

from streamseg.kernels.reference import masked_attention_reference

ENV_VAR = "STREAMSEG_KERNELS"
BACKENDS = ("auto", "triton", "reference")


def selected_backend(device: torch.device, head_dim: int) -> str:
    """"triton" or "reference" for these tensors, honouring STREAMSEG_KERNELS.

    In ``auto`` mode a head dim the kernels do not support (not a power of two in 16..256) uses the
    reference on CUDA as well.
    """
    from streamseg.errors import ConfigError
    from streamseg.kernels.launch import SUPPORTED_HEAD_DIMS

    choice = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if choice not in BACKENDS:
        raise ConfigError(f"{ENV_VAR} must be one of {', '.join(BACKENDS)}, got {choice!r}")
    if choice != "auto":
        return choice
    return "triton" if device.type == "cuda" and head_dim in SUPPORTED_HEAD_DIMS else "reference"


def check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> None:
    """Shape/dtype contract; a violation is a caller bug, hence ValueError."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be (B,H,N,d), got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    b, h, nq, d = q.shape
    nk = k.shape[2]
    if k.shape != (b, h, nk, d) or v.shape != k.shape:
        raise ValueError(f"k and v must be (B,H,Nk,d) matching q {tuple(q.shape)}, "
                         f"got {tuple(k.shape)}, {tuple(v.shape)}")
    if nk == 0:
        raise ValueError("masked attention needs at least one key (Nk = 0)")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool (True = may attend), got {mask.dtype}")
    if tuple(mask.shape) not in ((b, nq, nk), (b, h, nq, nk)):
        raise ValueError(f"mask must be (B,Nq,Nk)={(b, nq, nk)} or (B,H,Nq,Nk), got {tuple(mask.shape)}")


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                     scale: float | None = None) -> torch.Tensor:
    """softmax(q k^T * scale where mask, else -inf) v; differentiable in q, k, v.

    q (B,H,Nq,d), k/v (B,H,Nk,d), mask (B,Nq,Nk) or (B,H,Nq,Nk) bool, True = may attend;
    scale defaults to 1/sqrt(d). A query row whose mask is all False attends to every key
    (Mask2Former's rule); both backends apply that rule themselves, callers pass the raw mask.
    """
    check_inputs(q, k, v, mask)
    if selected_backend(q.device, q.shape[-1]) == "triton":
        from streamseg.kernels.triton_attention import triton_masked_attention

        return triton_masked_attention(q, k, v, mask, scale)
    return masked_attention_reference(q, k, v, mask, scale)
