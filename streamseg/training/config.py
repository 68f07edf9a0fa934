"""Training settings. Owned by the training package; extend here, torch-free."""
from __future__ import annotations

from dataclasses import dataclass

from streamseg.config_checks import require


@dataclass
class TrainConfig:
    lr: float = 1e-4
    steps: int = 1000
    clip_frames: int = 3

    def validate(self) -> None:
        require(self.lr > 0, "lr must be > 0")
        require(self.steps >= 1, "steps must be >= 1")
