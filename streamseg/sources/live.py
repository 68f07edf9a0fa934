"""The connect / watchdog / reconnect loop shared by every live network or device source.

A live stream can stall or vanish at any time (server restart, cable pulled, camera reset) and the
libraries only tell us by ending or going quiet. One loop owns that policy for RTSP, cameras and
the test source: every connection attempt must deliver a frame within ``open_timeout_s``; failed
attempts are retried with capped exponential backoff (also when the server is not up yet at
start), ``reconnect_attempts`` consecutive failures (0 = never) make the source fail, and every
recovered loss bumps ``epoch`` so consumers know the frames are a new run of the stream.

Backoff keeps a dead or broken server from being hammered, but it also delays the resume once the
server is back (up to ``reconnect_max_s``). A source may give a cheap ``probe`` (RTSP: a TCP
connect to the server's port; camera: the device node exists): it is polled every
``PROBE_INTERVAL_S`` during a backoff wait, and the wait ends as soon as the probe sees the
endpoint come up, so a returning server is read again within ~0.1 s plus its first frame.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Callable, Iterator, Protocol

import numpy as np

from streamseg.errors import SourceError
from streamseg.interface import Frame
from streamseg.sources.base import SourceOptions

log = logging.getLogger(__name__)

_POLL_S = 0.1  # how often a blocked read re-checks close() and the watchdog
PROBE_INTERVAL_S = 0.1  # how often a backoff wait asks the probe whether the endpoint is back


class StreamLost(Exception):
    """The connection ended or failed (EOS, network error); the loop decides whether to retry."""


class FrameReader(Protocol):
    """One connection's frames. Readers are single-use: a reconnect makes a new one."""

    def read(self, timeout_s: float) -> tuple[np.ndarray, float | None] | None:
        """(RGB image, pts seconds) or None when nothing arrived in ``timeout_s``; raises StreamLost."""

    def close(self) -> None:
        """Release the connection (called from the thread that reads)."""


Connect = Callable[[float], FrameReader]  # connect(timeout_s) -> reader; raises StreamLost or SourceError
Probe = Callable[[], bool]  # cheap, bounded (~PROBE_INTERVAL_S): True when a connection may succeed now


def tcp_probe(host: str, port: int, timeout_s: float = PROBE_INTERVAL_S) -> Probe:
    """A probe that is True while ``host:port`` accepts TCP connections (the server is listening)."""

    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return True
        except OSError:
            return False

    return probe


class ReconnectingSource:
    """A live source built from a ``connect`` function; see the module docstring for the policy."""

    live = True

    def __init__(self, uri: str, options: SourceOptions, connect: Connect, fps: float | None = None,
                 backend: str = "custom", probe: Probe | None = None):
        self.uri = uri
        self.backend = backend  # "gstreamer" | "pyav": which library reads the stream
        self.options = options
        self.state = "connecting"
        self.epoch = 0
        self.fps = fps
        self.reconnects = 0  # recovered losses (== epoch)
        self.attempts = 0  # connection attempts made (each one open_timeout_s at most)
        self.last_error: str | None = None
        self._connect = connect
        self._probe = probe
        self._probe_up: bool | None = None  # the probe's last answer (None: not asked yet)
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()

    def frames(self) -> Iterator[Frame]:
        opts = self.options
        index = 0
        failures = 0  # consecutive failed attempts
        delay = opts.reconnect_initial_s
        try:
            while not self._closed.is_set():
                self.attempts += 1
                reader = self._attempt(opts.open_timeout_s)
                if reader is None:  # failed attempt: back off (or until the probe sees the server), retry
                    if self._closed.is_set():
                        break
                    failures += 1
                    if opts.reconnect_attempts and failures >= opts.reconnect_attempts:
                        raise SourceError(self._failed_message(failures))
                    if self.state != "reconnecting":
                        log.warning("%s: %s; retrying", self.uri, self.last_error)
                    self.state = "reconnecting"
                    self._back_off(delay)
                    delay = min(delay * 2, opts.reconnect_max_s)
                    continue
                first, reader = reader
                failures = 0
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
                self.epoch += 1  # whatever comes next is a new run of the stream
                self.reconnects += 1
        finally:
            self.state = "ended"

    def _back_off(self, delay_s: float) -> None:
        """Wait ``delay_s``, or less: until close(), or until the probe sees the endpoint come up.

        The probe's last answer is kept across waits: a server that came up during the failed
        attempt (it listens before it serves) gets only ``reconnect_initial_s``, not the grown delay.
        """
        if self._probe is None:
            self._closed.wait(delay_s)
            return
        up = self._probe()
        if up and self._probe_up is False:
            delay_s = min(delay_s, self.options.reconnect_initial_s)
        self._probe_up = up
        end = time.monotonic() + delay_s
        while not self._closed.is_set():
            remaining = end - time.monotonic()
            if remaining <= 0 or self._closed.wait(min(PROBE_INTERVAL_S, remaining)):
                return
            up = self._probe()
            came_up = up and not self._probe_up
            self._probe_up = up
            if came_up:
                return

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

    def _failed_message(self, failures: int) -> str:
        reason = f": {self.last_error}" if self.last_error else ""
        tries = f" ({failures} attempts)" if failures > 1 else ""
        return f"cannot connect to {self.uri} within {self.options.open_timeout_s:g}s{tries}{reason}"
