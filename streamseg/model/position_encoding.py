"""2-D sine positional encoding (DETR/Mask2Former style) for feature maps and their tokens."""
from __future__ import annotations

import math

import torch


def sine_position_encoding(h: int, w: int, dim: int, device: torch.device,
                           dtype: torch.dtype = torch.float32,
                           temperature: float = 10000.0, eps: float = 0.0) -> torch.Tensor:
    """Encoding of an h x w grid as (h*w, dim) tokens, row-major; coordinates normalised to
    (0, 2*pi] so one encoding fits every input size. ``eps``: Mask2Former divides by (size + 1e-6)."""
    npf = dim // 2
    y = torch.arange(1, h + 1, device=device, dtype=torch.float32) / (h + eps) * 2 * math.pi
    x = torch.arange(1, w + 1, device=device, dtype=torch.float32) / (w + eps) * 2 * math.pi
    dim_t = torch.arange(npf, device=device, dtype=torch.float32)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / npf)
    px = x[:, None] / dim_t  # (w, npf)
    py = y[:, None] / dim_t  # (h, npf)
    px = torch.stack((px[:, 0::2].sin(), px[:, 1::2].cos()), dim=2).flatten(1)
    py = torch.stack((py[:, 0::2].sin(), py[:, 1::2].cos()), dim=2).flatten(1)
    pos = torch.cat((py[:, None, :].expand(h, w, npf), px[None, :, :].expand(h, w, npf)), dim=2)
    if pos.shape[-1] < dim:  # odd dim: pad
        pos = torch.nn.functional.pad(pos, (0, dim - pos.shape[-1]))
    return pos.reshape(h * w, dim).to(dtype)
