"""Instance masks <-> COCO compressed RLE of their tight box crop (protocol v1 mask parts).

Instances carry their crop (streamseg.masks), so encoding costs the object's size, not the frame's.
Decoding parses the counts string here, checking it as it goes: pycocotools trusts its input (short or garbled counts decode to uninitialised memory),
and the wire is untrusted. The checked run lengths then expand with one np.repeat.
"""
from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask

from streamseg.errors import ProtocolError
from streamseg.masks import MaskBox, paste, tight_box

__all__ = ["MaskBox", "decode_crop", "encode_crop", "encode_mask", "parse_counts", "paste", "runs_area",
           "tight_box"]

_MAX_CHARS_PER_COUNT = 7  # 35 bits: far beyond any frame's pixel count, keeps the int64 maths exact


def encode_crop(crop: np.ndarray) -> bytes:
    """An h x w bool crop -> the counts bytes of its COCO RLE (column-major, as pycocotools writes it)."""
    if crop.dtype != np.uint8:
        crop = crop.view(np.uint8) if crop.dtype == np.bool_ else (crop != 0).view(np.uint8)
    return bytes(coco_mask.encode(np.asfortranarray(crop))["counts"])


def encode_mask(mask: np.ndarray) -> tuple[MaskBox, bytes]:
    """Full-frame HxW bool mask -> (mask_box, counts bytes of its tight crop's COCO RLE)."""
    box = tight_box(mask)
    x, y, w, h = box
    return box, encode_crop(mask[y:y + h, x:x + w])


def parse_counts(counts: bytes, height: int, width: int) -> np.ndarray:
    """Decode a COCO counts string into run lengths, checking it describes exactly height*width pixels.

    Runs alternate 0s and 1s, starting with 0s, over the crop in column-major order.
    Raises ProtocolError on any malformed string.
    """
    c = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        raise ProtocolError("mask counts string is empty")
    if c.min() < 0 or c.max() > 63:
        raise ProtocolError("mask counts string has a character outside '0'..'o' (48..111)")
    more = (c & 0x20) != 0
    if more[-1]:
        raise ProtocolError("mask counts string is truncated (last character continues)")
    ends = np.flatnonzero(~more)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if lengths.max() > _MAX_CHARS_PER_COUNT:
        raise ProtocolError("mask counts string holds a run length too large for any frame")
    position = np.arange(c.size) - np.repeat(starts, lengths)
    chunks = (c & 0x1F) << (5 * position)
    values = np.add.reduceat(chunks, starts)
    negative = (c[ends] & 0x10) != 0
    values = np.where(negative, values - (np.int64(1) << (5 * lengths)), values)
    runs = values.copy()  # runs[j] for j > 2 is stored as a difference to runs[j - 2]
    if runs.size > 3:
        runs[3::2] = np.cumsum(values[3::2]) + values[1]
    if runs.size > 4:
        runs[4::2] = np.cumsum(values[4::2]) + values[2]
    if runs.min() < 0:
        raise ProtocolError("mask counts string decodes to a negative run length")
    if int(runs.sum()) != height * width:
        raise ProtocolError(
            f"mask counts cover {int(runs.sum())} pixels, its mask_box holds {height}x{width}={height * width}")
    return runs


def runs_area(runs: np.ndarray) -> int:
    """Foreground pixel count: the sum of the odd-indexed runs (the 1s)."""
    return int(runs[1::2].sum())


def decode_crop(runs: np.ndarray, height: int, width: int) -> np.ndarray:
    """Validated run lengths (parse_counts) -> height x width bool crop.

    Same result as pycocotools.mask.decode, without parsing the string a second time.
    """
    values = np.zeros(runs.size, dtype=bool)
    values[1::2] = True
    return np.repeat(values, runs).reshape(width, height).T  # runs walk the crop column by column
