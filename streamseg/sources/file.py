"""Video files (anything FFmpeg reads) through PyAV, as fast as possible or paced to real time.

Fast mode yields every frame (recordings and evaluations must see them all). Realtime mode sleeps
to each frame's pts so a file behaves like a camera, and the source reports itself live so the
engine drops rather than queues. Looping keeps pts and frame indices increasing across wraps.

A file that ends early (truncated, corrupt past some point) still yields every frame that decodes,
then ends with ``warning`` saying how far it got, so the run keeps what it has and the user learns
the file was damaged rather than seeing a plain end of stream.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Iterator

from streamseg.errors import SourceError
from streamseg.interface import Frame
from streamseg.sources.base import SourceOptions
from streamseg.sources.pyav_frames import rgb_array


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _reason(exc: Exception, timeout_s: float, av) -> str:
    """FFmpeg's words for a failure, except its "Immediate exit requested": that is our timeout."""
    if isinstance(exc, av.ExitError):
        return f"no data within {timeout_s:g}s (connected, but the sender is silent)"
    return _one_line(exc)


class FileSource:
    """Frames of one video file; opened (and validated) at construction."""

    def __init__(self, uri: str, options: SourceOptions, path: str | None = None, check_exists: bool = True):
        import av

        self.uri = uri
        self.options = options
        self.path = path if path is not None else uri
        self.live = bool(options.realtime)
        self.state = "connecting"
        self.epoch = 0
        self.warning: str | None = None  # set when the file ended early (truncated or corrupt)
        self._closed = threading.Event()
        if check_exists and os.path.isdir(self.path):
            raise SourceError(f"video source {self.path} is a directory, not a video file")
        if check_exists and not os.path.isfile(self.path):
            raise SourceError(f"video file not found: {self.path}")
        self._container = self._open(av)
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        self.fps: float | None = float(rate) if rate else None
        self.width = stream.codec_context.width
        self.height = stream.codec_context.height
        # Frames in the file when its container says (status line: n/total, ETA); None when unknown or --loop.
        self.total_frames: int | None = None if options.loop else (int(stream.frames or 0) or None)
        self.state = "connected"

    def _open(self, av):
        try:
            container = av.open(self.path, timeout=self.options.open_timeout_s)
        except Exception as exc:  # FFmpeg: invalid data, unsupported format, permissions ...
            raise SourceError(f"cannot read video {self.path}: {_reason(exc, self.options.open_timeout_s, av)}") from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"no video stream in {self.path}")
        container.streams.video[0].thread_type = "AUTO"  # frame-threaded decoding: ~2x on 2 cores
        return container

    def close(self) -> None:
        self._closed.set()

    def _decoded(self, n: int) -> str:
        expected = f" of {self.total_frames} expected" if self.total_frames and not self.options.loop else ""
        return f"{n} frames decoded{expected}"

    def frames(self) -> Iterator[Frame]:
        import av

        index = 0
        offset = 0.0  # pts added after each loop so pts keep increasing
        clock_start: float | None = None  # wall time that pts 0 (of the first pass) maps to
        container = self._container
        try:
            while not self._closed.is_set():
                first_pts, last_pts, step, n_pass = None, None, 1.0 / (self.fps or 30.0), 0
                try:
                    for frame in container.decode(video=0):
                        if self._closed.is_set():
                            return
                        pts = frame.time
                        if pts is None:
                            pts = (last_pts + step) if last_pts is not None else 0.0
                        elif last_pts is not None and pts > last_pts:
                            step = pts - last_pts
                        last_pts = pts
                        if first_pts is None:
                            first_pts = pts
                        t = pts + offset
                        if self.options.realtime:
                            if clock_start is None:
                                clock_start = time.monotonic() - t
                            wait = clock_start + t - time.monotonic()
                            if wait > 0 and self._closed.wait(wait):
                                return
                        image = rgb_array(frame)
                        yield Frame(image=image, index=index, pts=t, t_capture_ns=time.time_ns(), epoch=self.epoch)
                        index += 1
                        n_pass += 1
                except av.FFmpegError as exc:
                    why = _reason(exc, self.options.open_timeout_s, av)
                    if index == 0:
                        raise SourceError(f"cannot decode video {self.path}: {why}") from None
                    self.warning = f"{self.path}: file ended early: {self._decoded(n_pass)} (decoder error: {why})"
                    return
                if not self.options.loop and self.total_frames and n_pass < self.total_frames:
                    self.warning = f"{self.path}: file ended early: {self._decoded(n_pass)}"
                if not self.options.loop or n_pass == 0:
                    return
                offset += last_pts + step - first_pts
                container.close()  # reopening is simpler and safer than seeking a drained decoder
                container = self._open(av)
        finally:
            container.close()
            self.state = "ended"
