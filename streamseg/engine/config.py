"""Engine settings (transport, recording, reconnects). Owned by the engine package."""
from __future__ import annotations

from dataclasses import dataclass

from streamseg.config_checks import require


@dataclass
class EngineConfig:
    publish: str = "tcp://127.0.0.1:5555"
    send_hwm: int = 8  # ZeroMQ high-water mark (messages): publishing never blocks past it
    status_hz: float = 1.0
    realtime: bool = False  # pace file sources to their frame rate (and drop frames like a live source)
    loop: bool = False  # loop file sources
    open_timeout_s: float = 5.0
    read_timeout_s: float = 3.0  # watchdog: no frame for this long => reconnect
    reconnect_initial_s: float = 0.2
    reconnect_max_s: float = 5.0

    def validate(self) -> None:
        require(self.send_hwm >= 1, "send_hwm must be >= 1")
        require(self.status_hz > 0, "status_hz must be > 0")
        require(self.open_timeout_s > 0, "open_timeout_s must be > 0")
        require(self.read_timeout_s > 0, "read_timeout_s must be > 0")
        require(0 < self.reconnect_initial_s <= self.reconnect_max_s,
                "reconnect_initial_s must be > 0 and <= reconnect_max_s")
