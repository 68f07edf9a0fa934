"""What every source provides, and the options that tune how it opens, paces and reconnects."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol

from streamseg.interface import Frame

BACKENDS = ("auto", "gstreamer", "pyav")


@dataclass
class SourceOptions:
    realtime: bool = False  # files: pace to the stream's frame rate and behave like a live source
    loop: bool = False  # files: start again at EOS
    open_timeout_s: float = 5.0  # live sources: the first connection must deliver a frame within this
    read_timeout_s: float = 3.0  # watchdog: no frame for this long => reconnect (live sources)
    reconnect_initial_s: float = 0.2  # first backoff after a failed reconnect attempt
    reconnect_max_s: float = 2.0  # backoff cap (resume within ~2 s of a server's return); retries go on forever once connected
    backend: str = "auto"  # rtsp/camera/testsrc: "gstreamer", "pyav", or "auto" (GStreamer when importable)


class Source(Protocol):
    uri: str
    live: bool  # True: frames may be dropped (reader never waits); False: every frame is processed
    state: str  # "connecting" | "connected" | "reconnecting" | "ended"
    epoch: int  # increments on every reconnect
    fps: float | None

    def frames(self) -> Iterator[Frame]:
        """Blocking generator of frames; returns at EOS; raises SourceError on fatal errors."""

    def close(self) -> None:
        """Thread-safe: makes frames() return promptly."""
