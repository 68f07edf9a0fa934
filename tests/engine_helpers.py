"""Helpers for the engine, CLI and example tests: a real MP4 writer, CLI subprocesses, a
subscription handshake, and a segmenter test double for sources without ground truth."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from streamseg.interface import Frame, Instance, Tracks, Vocabulary

ROOT = Path(__file__).resolve().parents[1]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def streamseg_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "streamseg", *args]


def run_cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(streamseg_cmd(*args), cwd=ROOT, env=subprocess_env(), capture_output=True,
                          text=True, timeout=timeout)


def start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(streamseg_cmd(*args), cwd=ROOT, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def square_frame(i: int, width: int = 160, height: int = 120, side: int = 32) -> tuple[np.ndarray, tuple]:
    """A white square moving right on black; returns (image, (x, y, side))."""
    x, y = 8 + 3 * i, 40
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[y:y + side, x:x + side] = 255
    return image, (x, y, side)


def write_square_mp4(path: Path, frames: int, fps: int = 25) -> None:
    """A real H.264 MP4 (PyAV) of ``square_frame`` 0..frames-1."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height = 160, 120
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(square_frame(i)[0], format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


class BrightRegionSegmenter:
    """TEST DOUBLE: one instance (track 1, "bright") = the pixels brighter than mid-grey.

    For sources without ground truth (files, RTSP), where the engine's behaviour, not the
    segmentation, is under test."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s

    def init_state(self, vocabulary: Vocabulary) -> dict:
        return {"vocabulary": vocabulary}

    def set_vocabulary(self, state: dict, vocabulary: Vocabulary) -> None:
        state["vocabulary"] = vocabulary

    def step(self, state: dict, frame: Frame) -> Tracks:
        if self.delay_s:
            time.sleep(self.delay_s)
        mask = frame.image.mean(axis=2) > 128
        inst = Instance.from_mask(1, 0, "bright", 1.0, mask)
        instances = [inst] if inst is not None else []
        return Tracks(frame_index=frame.index, width=frame.width, height=frame.height, instances=instances)


def wait_subscribed(publisher, subscriber, timeout_s: float = 5.0) -> None:
    """Publish probe status messages until the subscriber receives one (ZeroMQ's slow joiner)."""
    from streamseg.transport import protocol

    probe = {"state": "connecting", "fps_in": 0.0, "fps_out": 0.0, "dropped": 0, "latency_ms": {}, "epoch": 0}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        publisher.send(protocol.encode_status("probe", probe))
        msg = subscriber.recv(timeout_ms=50)
        if msg is not None and msg.stream == "probe":
            while subscriber.recv(timeout_ms=20) is not None:  # discard queued probes
                pass
            return
    raise TimeoutError("subscriber never received the probe")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Mask IoU; two empty masks agree perfectly (1.0)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
