"""Per-stream bookkeeping of prompted targets (the segmenter's side of TarViS-style targets).

A target gets a track ID from the stream's track counter when it is added (so it never collides
with a vocabulary track) and keeps it until removed: no birth/death thresholds apply to it.
Prompts are kept in source-frame pixels until the frame they apply to is known, then mapped to
the network's input coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from streamseg.errors import ConfigError
from streamseg.model.target_encoder import TargetPrompt


@dataclass
class TargetInfo:
    track_id: int
    name: str
    kind: str  # mask | box | point
    slot: int | None = None  # model target slot; None while pending (before its first frame)
    prompt: SourcePrompt | None = None  # kept until its first frame is shown (postprocess.target_fallback)
    added_frame: int | None = None  # the segmenter frame count at which it took effect
    # its last shown mask at the network's mask resolution (postprocess.target_continuity)
    reference: np.ndarray | None = None
    # the class track it coincides with (postprocess.target_fallback), by track ID
    link: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"track_id": self.track_id, "name": self.name, "kind": self.kind,
                "pending": self.slot is None}


@dataclass
class SourcePrompt:
    """A prompt in source pixels: mask (H, W) bool, box (x0, y0, x1, y1) or points (P, 2) (x, y)."""

    kind: str
    mask: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    points: np.ndarray | None = None

    def to_input(self, height: int, width: int, in_h: int, in_w: int) -> TargetPrompt:
        sy, sx = in_h / height, in_w / width
        if self.kind == "mask":
            assert self.mask is not None
            return TargetPrompt("mask", mask=torch.from_numpy(np.ascontiguousarray(self.mask, dtype=bool)))
        if self.kind == "box":
            assert self.box is not None
            x0, y0, x1, y1 = self.box
            return TargetPrompt("box", box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy))
        assert self.points is not None
        pts = np.asarray(self.points, dtype=np.float32).reshape(-1, 2)
        scaled = np.stack([(pts[:, 0] + 0.5) * sx - 0.5, (pts[:, 1] + 0.5) * sy - 0.5], 1)
        return TargetPrompt("point", points=torch.from_numpy(scaled))

    def cells(self, height: int, width: int, mask_h: int, mask_w: int) -> np.ndarray:
        """The (mask_h, mask_w) cells of the mask grid over the (height, width) frame that the
        prompt touches: any pixel of the mask, any part of the box, the cell of each point."""
        sy, sx = mask_h / height, mask_w / width
        out = np.zeros((mask_h, mask_w), dtype=bool)
        if self.kind == "mask":
            assert self.mask is not None
            ys, xs = np.nonzero(self.mask)
            out[np.minimum((ys * sy).astype(int), mask_h - 1), np.minimum((xs * sx).astype(int), mask_w - 1)] = True
        elif self.kind == "box":
            assert self.box is not None
            x0, y0, x1, y1 = self.box
            r0, r1 = int(np.clip(y0 * sy, 0, mask_h - 1)), int(np.clip(np.ceil(y1 * sy), 1, mask_h))
            c0, c1 = int(np.clip(x0 * sx, 0, mask_w - 1)), int(np.clip(np.ceil(x1 * sx), 1, mask_w))
            out[r0:max(r1, r0 + 1), c0:max(c1, c0 + 1)] = True
        else:
            assert self.points is not None
            for x, y in np.asarray(self.points, dtype=np.float64).reshape(-1, 2):
                out[min(int(y * sy), mask_h - 1), min(int(x * sx), mask_w - 1)] = True
        return out


@dataclass
class TargetBook:
    """The targets of one stream: live ones by track ID, and prompts waiting for the next frame."""

    targets: dict[int, TargetInfo] = field(default_factory=dict)
    pending: list[tuple[int, SourcePrompt]] = field(default_factory=list)

    def by_slot(self) -> dict[int, TargetInfo]:
        return {t.slot: t for t in self.targets.values() if t.slot is not None}


def make_prompt(points: Any = None, box: Any = None, mask: Any = None,
                frame_size: tuple[int, int] | None = None) -> SourcePrompt:
    """Check a user's prompt (exactly one of points, box, mask) and return it in source pixels.
    frame_size (H, W) when known: the prompt must lie inside it."""
    given = [k for k, v in (("points", points), ("box", box), ("mask", mask)) if v is not None]
    if len(given) != 1:
        raise ConfigError(f"a target needs exactly one of points, box or mask (got {', '.join(given) or 'none'})")
    if mask is not None:
        m = np.asarray(mask)
        if m.ndim != 2:
            raise ConfigError(f"target mask must be 2-D (H, W), got shape {m.shape}")
        m = m.astype(bool)
        if frame_size is not None and m.shape != tuple(frame_size):
            raise ConfigError(f"target mask is {m.shape[1]}x{m.shape[0]}, the frame {frame_size[1]}x{frame_size[0]}")
        if not m.any():
            raise ConfigError("target mask is empty")
        return SourcePrompt("mask", mask=m)
    if box is not None:
        b = np.asarray(box, dtype=np.float64).reshape(-1)
        if b.size != 4 or not np.isfinite(b).all() or b[2] <= b[0] or b[3] <= b[1]:
            raise ConfigError(f"target box must be 4 finite numbers x0, y0, x1, y1 with x1 > x0, y1 > y0, got {box}")
        return SourcePrompt("box", box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])))
    p = np.asarray(points, dtype=np.float64)
    if p.ndim == 1:
        p = p[None]
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < 1 or not np.isfinite(p).all():
        raise ConfigError(f"target points must be one or more (x, y) pairs, got {points}")
    if frame_size is not None:
        h, w = frame_size
        if (p[:, 0] < 0).any() or (p[:, 0] >= w).any() or (p[:, 1] < 0).any() or (p[:, 1] >= h).any():
            raise ConfigError(f"target points must lie inside the {w}x{h} frame")
    return SourcePrompt("point", points=p.astype(np.float32))
