"""Per-frame stage timings and their percentiles.

Each stage keeps a bounded window of recent samples (status messages report the recent p50/p95)
and a bounded reservoir of the whole run (the summary at the end), so memory stays flat on an
endless stream.
"""
from __future__ import annotations

import random
import threading
from collections import deque
from typing import Callable

import numpy as np

# Stage order used by status lines and summaries; segmenter-reported stages are appended after.
STAGES = ("decode", "slot_wait", "preprocess", "segment", "postprocess", "encode", "publish",
          "capture_to_publish", "record", "overhead", "overhead_cpu")


class StageTimings:
    def __init__(self, window: int = 300, reservoir: int = 20000, seed: int = 0) -> None:
        self._window = window
        self._reservoir = reservoir
        self._recent: dict[str, deque[float]] = {}
        self._all: dict[str, list[float]] = {}
        self._seen: dict[str, int] = {}
        self._rng = random.Random(seed)
        self.observer: Callable[[str, float], None] | None = None  # e.g. a Prometheus histogram

    def add(self, stage: str, ms: float) -> None:
        if self.observer is not None:
            self.observer(stage, ms)
        recent = self._recent.get(stage)
        if recent is None:
            recent = self._recent[stage] = deque(maxlen=self._window)
            self._all[stage] = []
            self._seen[stage] = 0
        recent.append(ms)
        seen = self._seen[stage] = self._seen[stage] + 1
        everything = self._all[stage]
        if len(everything) < self._reservoir:
            everything.append(ms)
        else:  # reservoir sampling keeps a uniform sample of the whole run in bounded memory
            j = self._rng.randrange(seen)
            if j < self._reservoir:
                everything[j] = ms

    def stages(self) -> list[str]:
        known = [s for s in STAGES if s in self._recent]
        return known + sorted(s for s in self._recent if s not in STAGES)

    def percentiles(self, recent: bool = True) -> dict[str, dict[str, float]]:
        """{stage: {"p50": ms, "p95": ms}} over the recent window (or the whole run)."""
        source = self._recent if recent else self._all
        out: dict[str, dict[str, float]] = {}
        for stage in self.stages():
            values = source[stage]
            if not values:
                continue
            p50, p95 = np.percentile(np.fromiter(values, dtype=np.float64, count=len(values)), (50, 95))
            out[stage] = {"p50": round(float(p50), 3), "p95": round(float(p95), 3)}
        return out

    def count(self, stage: str) -> int:
        return self._seen.get(stage, 0)


class RateMeter:
    """Events per second over a sliding window of timestamps (seconds, monotonic).

    Thread-safe: readers tick it, the inference loop reads it.
    """

    def __init__(self, window_s: float = 2.0) -> None:
        self._window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: float) -> None:
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def rate(self, now: float) -> float:
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            return (len(self._times) - 1) / max(now - self._times[0], 1e-9)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self._window_s:
            self._times.popleft()
