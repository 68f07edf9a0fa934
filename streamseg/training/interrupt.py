"""Ctrl-C / SIGTERM during training: finish the step in flight, then save a resumable checkpoint.

A signal that lands mid-step (inside backward or the optimiser update) would otherwise leave
nothing on disk; the handler only sets a flag that the loop reads between steps. A second signal
restores the default behaviour, so a stuck run can still be killed.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class StopRequest:
    """Context manager: ``requested`` turns True on the first SIGINT/SIGTERM while inside."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        for sig, handler in self._previous.items():  # a second signal acts as it normally would
            signal.signal(sig, handler)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
