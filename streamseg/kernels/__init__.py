"""Custom kernels. ``masked_attention`` dispatches to Triton on CUDA and to the PyTorch reference on CPU
(``STREAMSEG_KERNELS=triton|reference`` forces either). Triton itself is imported on first use only,
so importing this package never defines jitted kernels before ``TRITON_INTERPRET`` is set."""
from streamseg.kernels.masked_attention import masked_attention

__all__ = ["masked_attention"]
