"""synthetic://?seed=&fps=&width=&height=&instances=&noise=&frames= — the synthetic scene as a live source.

Frames carry their ground truth (Frame.truth) and Frame.index is the scene's frame number, so
``SyntheticScene(cfg).render(frame.index)`` reproduces any received frame. ``fps=0`` renders as fast
as possible and makes the source non-live (every frame processed), for benchmarks and datasets.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Iterator
from urllib.parse import urlsplit

from streamseg.data.synthetic_scene import SceneConfig, SyntheticScene
from streamseg.errors import SourceError
from streamseg.interface import Frame
from streamseg.sources.base import SourceOptions
from streamseg.sources.uri_params import parse_params, require_frame_size, require_positive

_SPEC = {"seed": int, "fps": float, "width": int, "height": int, "instances": int, "noise": float,
         "frames": int, "start": int}
_DEFAULTS = {"seed": 0, "fps": 30.0, "width": 640, "height": 360, "instances": 6, "noise": 6.0,
             "frames": 0, "start": 0}  # frames=0: endless; start: first scene frame

class SyntheticSource:
    """Renders the scene at ``fps`` on a wall-clock schedule (late frames are not caught up)."""

    def __init__(self, uri: str, options: SourceOptions):
        parts = urlsplit(uri)
        if parts.netloc or parts.path not in ("", "/"):
            raise SourceError(f"synthetic takes only query parameters: synthetic://?seed=&fps=... (got {uri})")
        p = parse_params(uri, parts.query, _SPEC, _DEFAULTS)
        require_positive(uri, p, "width", "height")
        for name in ("fps", "instances", "noise", "frames", "start"):
            if p[name] < 0:
                raise SourceError(f"parameter '{name}' must be >= 0 in {uri}")
        if p["width"] < 16 or p["height"] < 16:
            raise SourceError(f"synthetic width and height must be >= 16 in {uri}")
        require_frame_size(uri, p)
        if not math.isfinite(p["fps"]) or not math.isfinite(p["noise"]):
            raise SourceError(f"parameters 'fps' and 'noise' must be finite in {uri}")
        self.uri = uri
        self.options = options
        self.params = p
        self.scene_config = SceneConfig(seed=p["seed"], width=p["width"], height=p["height"],
                                        instances=p["instances"], noise=p["noise"])
        self.scene = SyntheticScene(self.scene_config)
        self.fps: float | None = p["fps"] or None
        self.total_frames: int | None = p["frames"] or None  # frames=N: the status line shows n/N
        self.live = p["fps"] > 0
        self.state = "connected"
        self.epoch = 0
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()

    def frames(self) -> Iterator[Frame]:
        p = self.params
        period = 1.0 / p["fps"] if p["fps"] > 0 else 0.0
        index = p["start"]
        end = p["start"] + p["frames"] if p["frames"] else None
        due = time.monotonic()
        try:
            while not self._closed.is_set() and (end is None or index < end):
                if period:
                    wait = due - time.monotonic()
                    if wait > 0 and self._closed.wait(wait):
                        return
                    due = max(due + period, time.monotonic() - period)  # never burst to catch up
                image, truth = self.scene.render(index)
                yield Frame(image=image, index=index, pts=index / p["fps"] if period else None,
                            t_capture_ns=time.time_ns(), epoch=self.epoch, truth=truth)
                index += 1
        finally:
            self.state = "ended"
