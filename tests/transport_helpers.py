"""Shared helpers of the transport tests: frames with known masks, and PUB/SUB synchronisation."""
from __future__ import annotations

import time

import msgpack
import numpy as np

from streamseg.interface import Frame, Instance, Tracks, Vocabulary
from streamseg.transport.publisher import Publisher
from streamseg.transport.subscriber import Subscriber

VOCAB = Vocabulary(["person", "car", "ring"], encoder_id="test")
SYNC_STREAM = "sync"


def make_tracks(masks: list[np.ndarray], index: int = 7, pts: float | None = 0.25,
                t_capture_ns: int = 1_700_000_000_123_456_789) -> tuple[Frame, Tracks]:
    """A frame with one instance per mask: track ids 10, 11, …, classes cycling over VOCAB."""
    height, width = masks[0].shape if masks else (48, 64)
    frame = Frame(np.zeros((height, width, 3), np.uint8), index, pts, t_capture_ns)
    instances = []
    for i, m in enumerate(masks):
        inst = Instance.from_mask(10 + i, i % 3, VOCAB.names[i % 3], 0.5 + i / 100, m)
        if inst is None:  # an empty mask travels as an empty crop
            inst = Instance(10 + i, i % 3, VOCAB.names[i % 3], 0.5 + i / 100, (0.0, 0.0, 0.0, 0.0),
                            np.zeros((0, 0), bool), (0, 0, 0, 0))
        instances.append(inst)
    return frame, Tracks(index, width, height, instances)


def border_masks(height: int = 48, width: int = 64) -> list[np.ndarray]:
    """Masks touching each border and corner, the full frame, single pixels, an empty one."""
    def blank() -> np.ndarray:
        return np.zeros((height, width), dtype=bool)

    def painted(*regions) -> np.ndarray:
        m = blank()
        for region in regions:
            m[region] = True
        return m

    masks = [
        painted(np.s_[0:5, 10:30]),  # top border
        painted(np.s_[-4:, 3:9]),  # bottom border
        painted(np.s_[20:30, 0:2]),  # left border
        painted(np.s_[5:45, -1:]),  # right border, one column wide
        painted(np.s_[0:height, 0:width]),  # full frame
        painted(np.s_[0, 0]),  # 1 pixel, top-left corner
        painted(np.s_[-1, -1]),  # 1 pixel, bottom-right corner
        painted(np.s_[17, 33]),  # 1 pixel inside
    ]
    yy, xx = np.ogrid[:height, :width]
    r2 = (yy - 24) ** 2 + (xx - 32) ** 2
    masks.append((r2 <= 15 ** 2) & (r2 >= 6 ** 2))  # ring with a hole
    masks.append(painted(np.s_[0, :], np.s_[:, 0], np.s_[-1, :], np.s_[:, -1]))  # frame outline
    masks.append(blank())  # empty
    return masks


def with_seq(parts: list[bytes], seq: int) -> list[bytes]:
    """The same seg message with another seq (re-packs the header; masks untouched)."""
    header = msgpack.unpackb(parts[1])
    header["seq"] = seq
    return [parts[0], msgpack.packb(header), *parts[2:]]


def sync(pub: Publisher, sub: Subscriber, timeout_s: float = 5.0) -> None:
    """Wait out the PUB/SUB slow joiner: publish a status on SYNC_STREAM until one arrives, then drain."""
    status = {"state": "connected", "fps_in": 0.0, "fps_out": 0.0, "dropped": 0, "latency_ms": {}, "epoch": 0}
    deadline = time.monotonic() + timeout_s
    while True:
        pub.publish_status(SYNC_STREAM, status)
        message = sub.recv(20)
        if message is not None and message.stream == SYNC_STREAM:
            break
        assert time.monotonic() < deadline, f"subscription to {pub.address} not in place after {timeout_s} s"
    while sub.recv(50) is not None:
        pass
