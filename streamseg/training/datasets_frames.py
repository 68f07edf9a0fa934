"""JPEG frames of a dataset: read to RGB arrays, write from them.

torchvision's libjpeg-turbo codecs are used (fast, already a dependency); torch is imported inside
the functions so that importing this module stays cheap.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from streamseg.training.datasets_ytvis import DatasetError


def read_rgb(path: str | Path) -> np.ndarray:
    """A JPEG/PNG file -> H x W x 3 uint8 RGB."""
    import torch
    from torchvision.io import ImageReadMode, decode_image

    p = Path(path)
    try:
        data = torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8)
    except FileNotFoundError:
        raise DatasetError(f"frame not found: {p}") from None
    try:
        img = decode_image(data, mode=ImageReadMode.RGB)
    except RuntimeError:
        raise DatasetError(f"frame is not a readable image: {p}") from None
    return img.permute(1, 2, 0).contiguous().numpy()


def write_jpeg(path: str | Path, image: np.ndarray, quality: int = 90) -> None:
    """H x W x 3 uint8 RGB -> a JPEG file."""
    import torch
    from torchvision.io import encode_jpeg

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    encoded = encode_jpeg(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), quality=quality)
    p.write_bytes(encoded.numpy().tobytes())
