"""JPEG frames of a dataset: read to RGB arrays, write from them.

Pillow (libjpeg-turbo) does the codec work: fast, light to import, and not deprecated like
torchvision.io's image codecs.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from streamseg.data.ytvis import DatasetError


def read_rgb(path: str | Path) -> np.ndarray:
    """A JPEG/PNG file -> H x W x 3 uint8 RGB."""
    p = Path(path)
    try:
        with Image.open(p) as img:
            return np.array(img.convert("RGB"))  # a writable copy (torch.from_numpy needs one)
    except FileNotFoundError:
        raise DatasetError(f"frame not found: {p}") from None
    except (UnidentifiedImageError, OSError):
        raise DatasetError(f"frame is not a readable image: {p}") from None


def write_jpeg(path: str | Path, image: np.ndarray, quality: int = 90) -> None:
    """H x W x 3 uint8 RGB -> a JPEG file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image), "RGB").save(p, format="JPEG", quality=quality)


def jpeg_roundtrip(image: np.ndarray, quality: int = 90) -> np.ndarray:
    """The pixels ``write_jpeg`` then ``read_rgb`` would give, without a file."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), "RGB").save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as img:
        return np.array(img.convert("RGB"))
