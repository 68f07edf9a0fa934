"""The decoded forms of the three protocol v1 messages (seg, status, eos).

Masks stay as their RLE counts until asked for: a slow consumer draining to the latest message
decodes the masks of the one it keeps, not of every message it skips.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from streamseg.transport import rle


@dataclass
class SegInstance:
    """One tracked instance as received; `mask` is the full-frame bool mask (decoded on first use)."""

    id: int  # track id, persistent over the stream
    class_id: int
    label: str
    score: float
    box_xyxy: tuple[float, float, float, float]
    mask_box: tuple[int, int, int, int]  # x, y, w, h of the RLE crop inside the frame
    counts: bytes  # COCO compressed RLE counts of the crop (column-major)
    frame_height: int
    frame_width: int
    target: bool = False  # a prompted target (label = its name, class_id -1); absent on the wire = False
    _runs: np.ndarray | None = field(default=None, repr=False, compare=False)  # checked run lengths
    _mask: np.ndarray | None = field(default=None, repr=False, compare=False)  # decoded full-frame mask

    @property
    def track_id(self) -> int:
        return self.id

    def _validated_runs(self) -> np.ndarray:
        if self._runs is None:
            _, _, w, h = self.mask_box
            self._runs = rle.parse_counts(self.counts, h, w)
        return self._runs

    @property
    def area(self) -> int:
        """Mask pixel count, read from the run lengths without decoding the mask."""
        return rle.runs_area(self._validated_runs())

    @property
    def crop(self) -> np.ndarray:
        """The mask inside mask_box only (h x w bool)."""
        _, _, w, h = self.mask_box
        return rle.decode_crop(self._validated_runs(), h, w)

    @property
    def mask(self) -> np.ndarray:
        """Full-frame H x W bool mask."""
        if self._mask is None:
            self._mask = rle.paste(self.crop, self.mask_box, self.frame_height, self.frame_width)
        return self._mask


@dataclass
class SegMessage:
    """A frame's instances (topic seg/<stream>). seq_gap/skipped/epoch_changed are set by Subscriber."""

    stream: str
    epoch: int
    seq: int
    frame_index: int
    pts: float | None
    t_capture_ns: int
    t_publish_ns: int
    width: int
    height: int
    vocab_id: str
    vocab_names: list[str]
    instances: list[SegInstance]
    seq_gap: int = 0  # seg messages of this stream lost on the wire just before this one
    skipped: int = 0  # seg messages received but superseded by a newer one (Subscriber.recv_latest)
    epoch_changed: bool = False  # the source reconnected since the previous delivered message
    kind: str = "seg"

    def age_ms(self, now_ns: int | None = None) -> float:
        """Milliseconds since the frame was captured (wall clock: publisher and reader must agree)."""
        return ((time.time_ns() if now_ns is None else now_ns) - self.t_capture_ns) / 1e6

    def validate_masks(self) -> None:
        """Check every instance's RLE now (ProtocolError) instead of on first mask access."""
        for inst in self.instances:
            inst._validated_runs()


@dataclass
class StatusMessage:
    """Health of one stream (topic status/<stream>), about once per second."""

    stream: str
    epoch: int
    t_publish_ns: int
    state: str  # connecting | connected | reconnecting | ended
    fps_in: float  # frames read from the source per second
    fps_out: float  # seg messages published per second
    dropped: int  # frames dropped before inference since the stream started
    latency_ms: dict[str, dict[str, float]]  # stage -> {"p50": ms, "p95": ms}
    wire_dropped: int = 0  # messages the publisher's ZeroMQ socket refused (see docs/protocol.md)
    frames_in: int | None = None  # frames read from the source since the stream started
    frames_out: int | None = None  # seg messages published since the stream started
    error: str | None = None  # one-line reason when the stream failed
    kind: str = "status"


@dataclass
class EosMessage:
    """The stream ended (topic eos/<stream>): its source finished or the engine stopped."""

    stream: str
    epoch: int
    seq: int  # seq of the last seg message published on the stream, -1 if none
    reason: str
    t_publish_ns: int
    seq_gap: int = 0  # seg messages lost on the wire between the last one received and this EOS
    kind: str = "eos"


Message = SegMessage | StatusMessage | EosMessage
