"""Online tracker settings. Owned by the tracking package; extend here, torch-free."""
from __future__ import annotations

from dataclasses import dataclass

from streamseg.config_checks import require


@dataclass
class TrackerConfig:
    memory_length: int = 16  # M: prototypes kept per slot (FIFO)
    birth_threshold: float = 0.5
    keep_threshold: float = 0.3
    max_missed: int = 20  # D: frames below keep_threshold before a track ends

    def validate(self) -> None:
        require(self.memory_length >= 1, "memory_length must be >= 1")
        require(0.0 <= self.keep_threshold <= self.birth_threshold <= 1.0,
                "thresholds must satisfy 0 <= keep_threshold <= birth_threshold <= 1")
        require(self.max_missed >= 1, "max_missed must be >= 1")
