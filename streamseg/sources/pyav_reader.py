"""A PyAV reader for live URLs and devices: the fallback when GStreamer is not importable.

PyAV blocks inside FFmpeg while waiting for data, so decoding runs in its own thread that keeps only
the newest frame; read() waits on that slot with a timeout like the GStreamer reader does. FFmpeg's
own open/read timeouts bound how long the thread can stay blocked after close().
"""
from __future__ import annotations

import threading

import numpy as np

from streamseg.sources.live import StreamLost
from streamseg.sources.pyav_frames import rgb_array


class PyAVLiveReader:
    """Decodes ``url`` (with FFmpeg ``format``/``options``) in a thread; read() returns the newest frame."""

    def __init__(self, url: str, fmt: str | None, options: dict[str, str], open_timeout_s: float,
                 read_timeout_s: float):
        self._args = (url, fmt, options, (open_timeout_s, read_timeout_s))
        self._cond = threading.Condition()
        self._latest: tuple[np.ndarray, float | None] | None = None
        self._ended: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pyav-{url}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import av

        url, fmt, options, timeout = self._args
        reason = "end of stream"
        container = None
        try:
            container = av.open(url, format=fmt, options=options, timeout=timeout)
            if not container.streams.video:
                raise StreamLost(f"no video stream in {url}")
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if self._stop.is_set():
                    break
                for frame in packet.decode():
                    image = rgb_array(frame)
                    with self._cond:
                        self._latest = (image, frame.time)
                        self._cond.notify_all()
        except Exception as exc:  # any FFmpeg/network failure ends this connection
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        finally:
            if container is not None:
                container.close()
            with self._cond:
                self._ended = reason
                self._cond.notify_all()

    def read(self, timeout_s: float) -> tuple[np.ndarray, float | None] | None:
        with self._cond:
            if self._latest is None and self._ended is None:
                self._cond.wait(timeout_s)
            if self._latest is not None:
                got, self._latest = self._latest, None
                return got
            if self._ended is not None:
                raise StreamLost(self._ended)
            return None

    def close(self) -> None:
        self._stop.set()  # the thread leaves at its next packet or FFmpeg timeout
