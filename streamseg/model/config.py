"""Model and vocabulary settings. Owned by the model package; extend here, torch-free."""
from __future__ import annotations

from dataclasses import dataclass, field

from streamseg.config_checks import require


@dataclass
class ModelConfig:
    backbone: str = "mobilenet_v2"
    hidden_dim: int = 128
    num_queries: int = 50

    def validate(self) -> None:
        require(self.hidden_dim > 0, "hidden_dim must be > 0")
        require(self.num_queries > 0, "num_queries must be > 0")


@dataclass
class VocabularyConfig:
    names: list[str] = field(default_factory=list)
    file: str | None = None  # a vocabulary file written by `streamseg vocab build`
