"""The ``source`` config section: how every source opens, paces and reconnects (one place for all)."""
from __future__ import annotations

from dataclasses import dataclass

from streamseg.config_checks import require

BACKENDS = ("auto", "gstreamer", "pyav")


@dataclass
class SourceOptions:
    realtime: bool = False  # files: pace to the stream's frame rate and behave like a live source
    loop: bool = False  # files: start again at EOS
    open_timeout_s: float = 5.0  # live sources: each connection attempt must deliver a frame within this
    read_timeout_s: float = 3.0  # watchdog: no frame for this long => reconnect (live sources)
    reconnect_initial_s: float = 0.2  # first backoff after a failed connection attempt
    reconnect_max_s: float = 2.0  # backoff cap; a server whose port reopens is retried at once regardless
    reconnect_attempts: int = 0  # consecutive failed attempts before the source fails; 0 = retry forever
    backend: str = "auto"  # rtsp/camera/testsrc: "gstreamer", "pyav", or "auto" (GStreamer when importable)

    def validate(self) -> None:
        require(self.open_timeout_s > 0, "open_timeout_s must be > 0")
        require(self.read_timeout_s > 0, "read_timeout_s must be > 0")
        require(0 < self.reconnect_initial_s <= self.reconnect_max_s,
                "reconnect_initial_s must be > 0 and <= reconnect_max_s")
        require(self.reconnect_attempts >= 0, "reconnect_attempts must be >= 0 (0 = retry forever)")
        require(self.backend in BACKENDS, f"backend must be one of {', '.join(BACKENDS)}")
