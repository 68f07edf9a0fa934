"""The latest-frame slot between a source's reader thread and the inference loop.

A slot holds at most one frame. In *drop* mode (live sources) a new frame replaces an unread one
(the older is counted as dropped), so the reader never waits and latency stays bounded. In *wait*
mode (files read as fast as possible) the reader blocks until the slot is free, so every frame is
processed. Several slots share one ``threading.Condition`` so a single inference loop can sleep
until any stream has a frame.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Generic, TypeVar

from streamseg.interface import Frame

T = TypeVar("T")


@dataclass(frozen=True)
class SlotItem:
    """What a reader thread hands the inference loop: the frame and when/how long it took to get it."""

    frame: Frame
    decode_ms: float  # the source's decode time (files: wall; live sources: the reader's CPU time)
    t_put_ns: int  # time.perf_counter_ns() when it entered the slot (slot wait = take - put)


class LatestFrameSlot(Generic[T]):
    def __init__(self, wait: bool = False, cond: threading.Condition | None = None) -> None:
        self.wait = wait
        self._cond = cond if cond is not None else threading.Condition()
        self._item: T | None = None
        self._closed = False  # no more puts: the reader finished (EOS/error) or the engine stops
        self.dropped = 0  # frames replaced before the consumer took them
        self.put_count = 0

    @property
    def condition(self) -> threading.Condition:
        return self._cond

    def put(self, item: T) -> bool:
        """Offer a frame. Drop mode: never blocks. Wait mode: blocks while the slot is full.

        Returns False (frame discarded) once the slot is closed.
        """
        with self._cond:
            if self.wait:
                while self._item is not None and not self._closed:
                    self._cond.wait()
            if self._closed:
                return False
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.put_count += 1
            self._cond.notify_all()
            return True

    def take(self) -> T | None:
        """Non-blocking: the newest frame, or None. Frees the slot for a waiting reader."""
        with self._cond:
            item = self._item
            if item is not None:
                self._item = None
                self._cond.notify_all()
            return item

    def get(self, timeout: float | None = None) -> T | None:
        """Blocking take (for a consumer of this slot alone); None on timeout or when closed and empty."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            return self.take()

    def close(self) -> None:
        """No more frames will come (a frame still inside can be taken); wakes waiting readers."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def finished(self) -> bool:
        """Closed and empty: the consumer has seen everything this slot will ever hold."""
        with self._cond:
            return self._closed and self._item is None

    def has_item(self) -> bool:
        return self._item is not None
