"""The connect / watchdog / reconnect loop shared by every live network or device source.

A live stream can stall or vanish at any time (server restart, cable pulled, camera reset) and the
libraries only tell us by ending or going quiet. One loop owns that policy for RTSP, cameras and
the test source: the first connection must deliver a frame within ``open_timeout_s`` or the source
fails; after that it retries forever with capped exponential backoff, and every recovered loss
bumps ``epoch`` so consumers know the frames are a new run of the stream.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterator, Protocol

import numpy as np

from streamseg.errors import SourceError
from streamseg.interface import Frame
from streamseg.sources.base import SourceOptions

log = logging.getLogger(__name__)

_POLL_S = 0.1  # how often a blocked read re-checks close() and the watchdog


class StreamLost(Exception):
    """The connection ended or failed (EOS, network error); the loop decides whether to retry."""


class FrameReader(Protocol):
    """One connection's frames. Readers are single-use: a reconnect makes a new one."""

    def read(self, timeout_s: float) -> tuple[np.ndarray, float | None] | None:
        """(RGB image, pts seconds) or None when nothing arrived in ``timeout_s``; raises StreamLost."""

    def close(self) -> None:
        """Release the connection (called from the thread that reads)."""


Connect = Callable[[float], FrameReader]  # connect(timeout_s) -> reader; raises StreamLost or SourceError


class ReconnectingSource:
    """A live source built from a ``connect`` function; see the module docstring for the policy."""

    live = True

    def __init__(self, uri: str, options: SourceOptions, connect: Connect, fps: float | None = None,
                 backend: str = "custom"):
        self.uri = uri
        self.backend = backend  # "gstreamer" | "pyav": which library reads the stream
        self.options = options
        self.state = "connecting"
        self.epoch = 0
        self.fps = fps
        self.reconnects = 0  # recovered losses (== epoch)
        self.last_error: str | None = None
        self._connect = connect
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()

    def frames(self) -> Iterator[Frame]:
        opts = self.options
        index = 0
        connected_once = False
        started = time.monotonic()
        delay = opts.reconnect_initial_s
        try:
            while not self._closed.is_set():
                if connected_once:
                    budget = opts.open_timeout_s
                else:
                    budget = opts.open_timeout_s - (time.monotonic() - started)
                    if budget <= 0:
                        raise SourceError(self._never_connected_message())
                reader = self._attempt(budget)
                if reader is None:  # failed attempt: back off, then try again
                    if not connected_once:
                        remaining = opts.open_timeout_s - (time.monotonic() - started)
                        if remaining <= 0:
                            raise SourceError(self._never_connected_message())
                        self._closed.wait(min(delay, remaining))
                    else:
                        self._closed.wait(delay)
                    delay = min(delay * 2, opts.reconnect_max_s)
                    continue
                first, reader = reader
                connected_once = True
                delay = opts.reconnect_initial_s
                self.state = "connected"
                try:
                    for image, pts in self._run(reader, first):
                        yield Frame(image=image, index=index, pts=pts, t_capture_ns=time.time_ns(), epoch=self.epoch)
                        index += 1
                finally:
                    reader.close()
                if self._closed.is_set():
                    break
                log.warning("%s: stream lost (%s); reconnecting", self.uri, self.last_error)
                self.state = "reconnecting"
                self.epoch += 1
                self.reconnects += 1
        finally:
            self.state = "ended"

    def _attempt(self, budget_s: float):
        """Connect and wait for the first frame; returns (first, reader) or None (reason in last_error)."""
        deadline = time.monotonic() + budget_s
        try:
            reader = self._connect(budget_s)
        except StreamLost as exc:
            self.last_error = str(exc)
            return None
        try:
            while not self._closed.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.last_error = f"no frame within {budget_s:.1f}s"
                    break
                got = reader.read(min(_POLL_S, remaining))
                if got is not None:
                    return got, reader
        except StreamLost as exc:
            self.last_error = str(exc)
        reader.close()
        return None

    def _run(self, reader: FrameReader, first: tuple[np.ndarray, float | None]):
        """The first frame, then frames until loss (watchdog or StreamLost) or close()."""
        yield first
        last = time.monotonic()
        while not self._closed.is_set():
            try:
                got = reader.read(_POLL_S)
            except StreamLost as exc:
                self.last_error = str(exc)
                return
            now = time.monotonic()
            if got is None:
                if now - last > self.options.read_timeout_s:
                    self.last_error = f"no frame for {self.options.read_timeout_s:.1f}s"
                    return
                continue
            last = now
            yield got

    def _never_connected_message(self) -> str:
        reason = f": {self.last_error}" if self.last_error else ""
        return f"cannot connect to {self.uri} within {self.options.open_timeout_s:g}s{reason}"
