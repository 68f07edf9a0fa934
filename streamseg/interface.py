"""The contract between the engine and any segmenter.

The engine depends on this module only: a model, or the ground-truth test double, plugs in by
implementing :class:`Segmenter`. Kept free of torch so the streaming side imports fast.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from streamseg.masks import MaskBox, box_xyxy, crop_of, paste


@dataclass
class Frame:
    """One decoded frame as every source yields it."""

    image: np.ndarray  # H x W x 3, uint8, RGB, C-contiguous
    index: int  # the source's frame number (0, 1, 2, ... over the whole stream, across reconnects)
    pts: float | None  # presentation time in seconds, when the source knows it
    t_capture_ns: int  # time.time_ns() when the frame was received/decoded
    epoch: int = 0  # increments on every reconnect of a live source
    truth: list["TruthInstance"] | None = None  # ground truth, synthetic sources only

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass
class TruthInstance:
    """A known instance of the synthetic scene (ground truth)."""

    instance_id: int
    class_id: int
    label: str
    mask: np.ndarray  # H x W bool


@dataclass
class Instance:
    """One tracked instance in one frame."""

    track_id: int  # persistent over the stream, never reused
    class_id: int  # index into the vocabulary's names
    label: str
    score: float
    box_xyxy: tuple[float, float, float, float]  # pixels, full resolution
    crop: np.ndarray  # h x w bool: the mask inside mask_box (the one representation up to the wire)
    mask_box: MaskBox  # x, y, w, h of the crop in the frame
    target: bool = False  # a prompted target (label = its name, class_id -1), not a vocabulary class

    @classmethod
    def from_mask(cls, track_id: int, class_id: int, label: str, score: float,
                  mask: np.ndarray, target: bool = False) -> "Instance | None":
        """An instance from a full-frame bool mask (its tight crop and box); None when the mask is empty."""
        cropped = crop_of(mask)
        if cropped is None:
            return None
        crop, box = cropped
        return cls(track_id, class_id, label, score, box_xyxy(box), crop, box, target)

    def full_mask(self, height: int, width: int) -> np.ndarray:
        """The mask expanded to a height x width frame (allocates one; for consumers that want it)."""
        return paste(self.crop, self.mask_box, height, width)


@dataclass
class Tracks:
    """A segmenter's final output for one frame."""

    frame_index: int
    width: int
    height: int
    instances: list[Instance] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)  # optional per-component times


@dataclass
class Vocabulary:
    """The class names a segmenter recognises, with their text embeddings when it needs them."""

    names: list[str]
    embeddings: np.ndarray | None = None  # K x D float32, rows L2-normalised; None for the test double
    encoder_id: str = "none"

    @property
    def vocab_id(self) -> str:
        """A short stable id of (encoder, names): subscribers use it to notice a vocabulary swap."""
        digest = hashlib.sha1(("\n".join([self.encoder_id, *self.names])).encode()).hexdigest()
        return digest[:12]


StateT = TypeVar("StateT")


@runtime_checkable
class Segmenter(Protocol[StateT]):
    """A per-frame segmenter and tracker. All per-stream state lives in the object init_state returns
    (its own typed class, e.g. ``SegmenterState``); the engine holds it without looking inside."""

    def init_state(self, vocabulary: Vocabulary) -> StateT:
        """Fresh state for one stream."""

    def step(self, state: StateT, frame: Frame) -> Tracks:
        """Segment and track one frame; the returned Tracks are final."""

    def set_vocabulary(self, state: StateT, vocabulary: Vocabulary) -> None:
        """Swap the vocabulary of a running stream; takes effect on the next step."""
