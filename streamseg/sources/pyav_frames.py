"""Decoded PyAV frames as the C-order RGB arrays that every source hands downstream."""
from __future__ import annotations

import numpy as np


def rgb_array(frame) -> np.ndarray:
    """(H, W, 3) uint8, C order. PyAV >= 14 returns a view on FFmpeg's padded rows when 3 x width
    is not a multiple of its line alignment (160 pixels: 480 bytes padded to 576); copy those."""
    return np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
