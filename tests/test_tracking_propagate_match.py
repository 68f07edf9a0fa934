"""tracker.mode propagate_match with the shipped model: queries (and their memory) are carried
from frame to frame as in propagate, track IDs come from embedding matching as in match."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from engine_helpers import iou

from streamseg import build_segmenter, load_config
from streamseg.data.synthetic_scene import SceneConfig, SyntheticScene
from streamseg.interface import Frame
from streamseg.tracking.lifecycle import SlotTracks
from streamseg.tracking.match import MatchTracks

ROOT = Path(__file__).resolve().parents[1]


def _run(mode: str, frames: int):
    seg = build_segmenter(load_config(ROOT / "configs/cpu-mobilenet.yaml", [f"tracker.mode={mode}"]))
    scene = SyntheticScene(SceneConfig(seed=7, width=320, height=192))
    state = seg.init_state()
    ids: dict[int, list[int]] = defaultdict(list)  # truth id -> best-matching track id per frame
    for index in range(frames):
        image, truth = scene.render(index)
        tracks = seg.step(state, Frame(image, index, None, 0))
        for t in truth:
            scored = [(iou(t.mask, inst.full_mask(192, 320)), inst.track_id) for inst in tracks.instances]
            best = max(scored, default=(0.0, -1))
            if best[0] >= 0.5:
                ids[t.instance_id].append(best[1])
    return state, ids


@pytest.mark.parametrize("mode, tracks_type, carried", [
    ("propagate_match", MatchTracks, True), ("match", MatchTracks, False), ("propagate", SlotTracks, True)])
def test_modes_carry_queries_and_assign_ids_as_documented(mode, tracks_type, carried):
    state, ids = _run(mode, 12)
    assert isinstance(state.tracks, tracks_type)
    memory = int(state.model_state.memory_len.max())
    # carried queries accumulate one memory prototype per frame (up to the memory length);
    # fresh queries start every frame with an empty memory and hold only this frame's
    assert memory == (min(12, state.model_state.memory.shape[2]) if carried else 1)
    # objects found (IoU >= 0.5) in all 12 frames under one ID throughout, distinct per object
    steady = [tid for tid, seq in ids.items() if len(seq) == 12 and len(set(seq)) == 1]
    assert len(steady) >= 2, ids
    assert len({ids[tid][0] for tid in steady}) == len(steady), ids
