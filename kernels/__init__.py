"""Custom kernels. ``masked_attention`` dispatches to Triton on CUDA and to the PyTorch reference on CPU."""
from kernels.masked_attention import masked_attention

__all__ = ["masked_attention"]
