"""streamseg: streaming online video instance segmentation.

The public API. Everything here imports without torch; ``build_segmenter`` imports the model (and
torch) when called, so subscribers and the CLI's light commands stay fast to start.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamseg.config import Config, load_config
from streamseg.control.client import Controller
from streamseg.engine.build import build_engine
from streamseg.engine.pipeline import Engine
from streamseg.interface import Frame, Instance, Segmenter, Tracks, Vocabulary
from streamseg.sources import open_source
from streamseg.transport import Publisher, Subscriber

if TYPE_CHECKING:
    from streamseg.predictor.segmenter import SegmenterState

__all__ = [
    "Config", "Controller", "Engine", "Frame", "Instance", "Publisher", "Segmenter", "Subscriber", "Tracks", "Vocabulary",
    "build_engine", "build_segmenter", "load_config", "open_source",
]


def build_segmenter(config: Config, checkpoint: str | None = None,
                    device: Any = "cpu") -> Segmenter[SegmenterState]:
    """The model as a :class:`Segmenter` (see ``streamseg.predictor.segmenter.build_segmenter``)."""
    from streamseg.predictor.segmenter import build_segmenter as build

    return build(config, checkpoint, device)
