"""GroundTruthSegmenter — a TEST DOUBLE, not a model.

It replays the ground truth that the synthetic scene attaches to each frame (``Frame.truth``) as if
a perfect segmenter and tracker of the current vocabulary had produced it: track id = the
scene's instance id, score 1.0, only the instances whose class is in the vocabulary.
It exists so the engine, transport, examples and benchmarks can be exercised and measured end to
end without a trained model (and so the engine's own overhead can be isolated from inference).
It only works on sources that carry ground truth (``synthetic://``).
"""
from __future__ import annotations

from dataclasses import dataclass

from streamseg.errors import SourceError
from streamseg.interface import Frame, Instance, Tracks, Vocabulary


@dataclass
class GroundTruthState:
    vocabulary: Vocabulary
    steps: int = 0


class GroundTruthSegmenter:
    """Test double implementing the Segmenter protocol from ``Frame.truth`` (see module docstring)."""

    def init_state(self, vocabulary: Vocabulary) -> GroundTruthState:
        return GroundTruthState(vocabulary=vocabulary)

    def set_vocabulary(self, state: GroundTruthState, vocabulary: Vocabulary) -> None:
        state.vocabulary = vocabulary

    def step(self, state: GroundTruthState, frame: Frame) -> Tracks:
        if frame.truth is None:
            raise SourceError("the ground-truth segmenter needs a synthetic:// source "
                              "(this source's frames carry no ground truth)")
        index = {name: i for i, name in enumerate(state.vocabulary.names)}
        instances = []
        for truth in frame.truth:
            if truth.label not in index:
                continue  # a perfect segmenter of this vocabulary: other classes are not found
            inst = Instance.from_mask(int(truth.instance_id), index[truth.label], truth.label, 1.0, truth.mask)
            if inst is not None:
                instances.append(inst)
        state.steps += 1
        return Tracks(frame_index=frame.index, width=frame.width, height=frame.height,
                      instances=instances)
