"""The contract between the engine and any segmenter.

The engine depends on this module only: a model, or the ground-truth test double, plugs in by
implementing :class:`Segmenter`. Kept free of torch so the streaming side imports fast.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


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
    mask: np.ndarray  # H x W bool, full resolution
    target: bool = False  # a prompted target (label = its name, class_id -1), not a vocabulary class


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


@runtime_checkable
class Segmenter(Protocol):
    """A per-frame segmenter and tracker. All per-stream state lives in the object init_state returns."""

    def init_state(self, vocabulary: Vocabulary) -> Any:
        """Fresh state for one stream."""

    def step(self, state: Any, frame: Frame) -> Tracks:
        """Segment and track one frame; the returned Tracks are final."""

    def set_vocabulary(self, state: Any, vocabulary: Vocabulary) -> None:
        """Swap the vocabulary of a running stream; takes effect on the next step."""
