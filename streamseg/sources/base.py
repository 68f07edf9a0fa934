"""What every source provides, and the options that tune how it opens, paces and reconnects."""
from __future__ import annotations

from typing import Iterator, Protocol

from streamseg.interface import Frame
from streamseg.sources.config import BACKENDS, SourceOptions

__all__ = ["BACKENDS", "Source", "SourceOptions"]


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
