"""One mask representation: a bool crop and where it sits in the frame (``mask_box`` = x, y, w, h).

Post-processing produces it, the wire carries it (the COCO RLE of the crop), the overlay and the
evaluation read it; nothing on the way expands a mask to a full frame. ``tight_box`` is the one
box helper every producer of a crop uses. Kept free of torch and pycocotools (imported by the
engine's interface).
"""
from __future__ import annotations

import numpy as np

MaskBox = tuple[int, int, int, int]  # x, y, w, h in full-frame pixels


def tight_box(mask: np.ndarray) -> MaskBox:
    """The smallest [x, y, w, h] holding every True pixel; (0, 0, 0, 0) for an empty mask.

    Scans 8 pixels per uint64 word where the layout allows: the full-frame scan is most of the
    cost of a small object.
    """
    words = _as_words(mask)
    if words is not None:
        rows = np.flatnonzero(np.bitwise_or.reduce(words, axis=1))
    else:
        rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return (0, 0, 0, 0)
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    if words is not None:
        cols = np.flatnonzero(np.bitwise_or.reduce(words[y0:y1], axis=0).view(np.uint8))
    else:
        cols = np.flatnonzero(mask[y0:y1].any(axis=0))
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    return (x0, y0, x1 - x0, y1 - y0)


def _as_words(mask: np.ndarray) -> np.ndarray | None:
    """The mask's rows as uint64 words (a view), when it is a C-contiguous 1-byte mask of width % 8 == 0."""
    if mask.ndim != 2 or mask.itemsize != 1 or mask.shape[1] % 8 or not mask.flags.c_contiguous:
        return None
    return mask.view(np.uint64)


def crop_of(mask: np.ndarray) -> tuple[np.ndarray, MaskBox] | None:
    """A full-frame (or larger-region) bool mask -> (tight crop, its box), None when empty."""
    box = tight_box(mask)
    x, y, w, h = box
    if w == 0:
        return None
    return np.ascontiguousarray(mask[y:y + h, x:x + w], dtype=bool), box


def box_xyxy(box: MaskBox) -> tuple[float, float, float, float]:
    """mask_box (x, y, w, h) -> the end-exclusive pixel box (x0, y0, x1, y1) as floats."""
    x, y, w, h = box
    return (float(x), float(y), float(x + w), float(y + h))


def paste(crop: np.ndarray, box: MaskBox, frame_height: int, frame_width: int) -> np.ndarray:
    """A crop placed at (x, y) of an otherwise empty full-frame bool mask (for consumers that want one)."""
    x, y, w, h = box
    full = np.zeros((frame_height, frame_width), dtype=bool)
    full[y:y + h, x:x + w] = crop
    return full


def crop_iou(crop_a: np.ndarray, box_a: MaskBox, crop_b: np.ndarray, box_b: MaskBox) -> float:
    """IoU of two placed crops, computed on the union of their boxes only (no full frame)."""
    xa, ya, wa, ha = box_a
    xb, yb, wb, hb = box_b
    x0, y0 = min(xa, xb), min(ya, yb)
    x1, y1 = max(xa + wa, xb + wb), max(ya + ha, yb + hb)
    a = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    b = np.zeros_like(a)
    a[ya - y0:ya - y0 + ha, xa - x0:xa - x0 + wa] = crop_a
    b[yb - y0:yb - y0 + hb, xb - x0:xb - x0 + wb] = crop_b
    union = int(np.count_nonzero(a | b))
    return int(np.count_nonzero(a & b)) / union if union else 0.0
