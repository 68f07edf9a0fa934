"""postprocess.target_fallback: a target whose own mask is empty shows, under its own ID, the class
track it was following (or the shown class track overlapping its last mask, or its prompt, most)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from segmenter_helpers import random_vocabulary, scene_frames, tiny_config

from streamseg.config import load_config
from streamseg.predictor.segmenter import build_segmenter
from streamseg.predictor.target_fallback import borrowed_track, linked_track
from streamseg.predictor.targets import SourcePrompt

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1) in mask cells


def _cells(*boxes: Box, shape=(12, 20)) -> np.ndarray:
    m = np.zeros(shape, bool)
    for y0, y1, x0, x1 in boxes:
        m[y0:y1, x0:x1] = True
    return m


def test_the_link_is_the_closest_shown_track_and_sticks_when_none_is_close():
    own = _cells((2, 6, 2, 6))
    shown = {7: _cells((2, 6, 3, 7)), 9: _cells((2, 6, 2, 5)), 4: _cells((8, 10, 10, 14))}
    # IoU with 7: 12/20 = 0.6; with 9: 12/16 = 0.75
    assert linked_track(own, shown, None) == 9
    assert linked_track(own, {4: shown[4]}, 9) == 9  # nothing close: the old link stays
    assert linked_track(own, {7: shown[7]}, None, min_iou=0.7) is None


def test_a_lost_target_borrows_its_link_else_the_free_track_on_its_last_mask():
    ref = _cells((2, 6, 2, 6))
    shown = {3: _cells((3, 7, 3, 7)), 5: _cells((5, 9, 5, 9)), 8: _cells((9, 12, 15, 19))}
    assert borrowed_track(8, ref, shown, set()) == 8  # its link, wherever it went
    assert borrowed_track(1, ref, shown, set()) == 3  # link gone: the most overlap (9 cells vs 1)
    assert borrowed_track(None, ref, shown, {3}) == 5  # 3 follows another target
    assert borrowed_track(None, ref, {8: shown[8]}, set()) is None  # nothing on its last mask
    assert borrowed_track(None, None, shown, set()) is None  # nowhere seen yet
    assert borrowed_track(None, ref, {3: _cells((3, 7, 3, 7), shape=(6, 10))}, set()) is None  # size changed


def test_prompt_cells_on_the_mask_grid():
    h, w = 40, 80  # a 10 x 20 grid: cells of 4 x 4 pixels
    mask = np.zeros((h, w), bool)
    mask[5:9, 17:18] = True  # rows 1-2, column 4
    assert np.array_equal(SourcePrompt("mask", mask=mask).cells(h, w, 10, 20), _cells((1, 3, 4, 5), shape=(10, 20)))
    box = SourcePrompt("box", box=(4.0, 0.0, 12.5, 4.0)).cells(h, w, 10, 20)
    assert np.array_equal(box, _cells((0, 1, 1, 4), shape=(10, 20)))
    pts = SourcePrompt("point", points=np.array([[79.0, 39.0], [0.0, 8.0]], np.float32)).cells(h, w, 10, 20)
    assert np.array_equal(pts, _cells((9, 10, 19, 20), (2, 3, 0, 1), shape=(10, 20)))


def _blob(shape, *boxes: Box) -> torch.Tensor:
    x = torch.full(shape, -3.0)
    for y0, y1, x0, x1 in boxes:
        x[y0:y1, x0:x1] = 3.0
    return x


def _run(fallback: bool, track: list[Box], targets: list[list[Box | None]], prompts: list[tuple[int, int]]):
    """The real tiny segmenter (propagate: slot = track) with one class track (query 0, mask
    ``track[t]``) and one point target per prompt cell (row, col); target j's decoded mask on frame t
    is ``targets[t][j]`` (None: empty). Returns per frame the class instances and the targets' ones."""
    torch.manual_seed(0)
    seg = build_segmenter(tiny_config(f"postprocess.target_fallback={str(fallback).lower()}",
                                      "postprocess.target_continuity=1", "postprocess.track_continuity=1"))
    frames = scene_frames(len(track))
    h, w = frames[0].height, frames[0].width
    in_h, in_w = seg.model.input_size(h, w)
    mh, mw = in_h // 4, in_w // 4
    state = seg.init_state(random_vocabulary())
    ids = [seg.add_target(state, points=[((c + 0.5) * w / mw, (r + 0.5) * h / mh)], name=f"t{j}")
           for j, (r, c) in enumerate(prompts)]
    step, t = seg.model.step, iter(range(len(track)))

    def fake(*args, **kwargs):
        out = step(*args, **kwargs)
        i = next(t)
        assert out.pred_masks.shape[-2:] == (mh, mw)
        pm = torch.full_like(out.pred_masks, -3.0)
        pm[0, 0] = _blob((mh, mw), track[i])
        out.pred_masks = pm
        out.target_masks = torch.stack([_blob((mh, mw), *([b] if b else [])) for b in targets[i]])[None]
        return out

    seg.model.step = fake
    shown = []
    for f in frames:
        inst = seg.step(state, f).instances
        shown.append(([i for i in inst if not i.target], {i.track_id: i for i in inst if i.target}))
    return shown, ids, (h, w)


def test_a_target_that_lost_its_object_shows_the_class_track_it_followed():
    track = [(2, 5, 2, 5), (2, 5, 3, 6), (3, 6, 4, 7), (3, 6, 5, 8), (3, 6, 6, 9)]
    own = [[(2, 5, 2, 5)], [(2, 5, 3, 6)], [None], [None], [(3, 6, 6, 9)]]
    on, (tid,), (h, w) = _run(True, track, own, [(3, 3)])
    off, _, _ = _run(False, track, own, [(3, 3)])
    assert [tid in tg for _, tg in off] == [True, True, False, False, True]
    assert [tid in tg for _, tg in on] == [True] * 5
    for t in (2, 3):  # the borrowed frames: the class track's very mask, under the target's ID
        (cls,), tg = on[t]
        assert np.array_equal(tg[tid].full_mask(h, w), cls.full_mask(h, w)) and tg[tid].target
        assert tg[tid].track_id != cls.track_id and tg[tid].label == "t0"


def test_a_target_never_seen_borrows_the_track_on_its_prompt_and_tracks_are_not_shared():
    track = [(2, 5, 2, 5), (2, 5, 3, 6), (2, 5, 4, 7)]
    blind = [[None, None]] * 3
    # target 0 is prompted on the track, target 1 far from it
    on, (t0, t1), _ = _run(True, track, blind, [(3, 3), (10, 15)])
    assert [(t0 in tg, t1 in tg) for _, tg in on] == [(True, False)] * 3
    # both prompted on it: the first one takes it, the other shows nothing
    both, (a, b), _ = _run(True, track, blind, [(3, 3), (3, 4)])
    assert [(a in tg, b in tg) for _, tg in both] == [(True, False)] * 3


def test_the_cpu_config_turns_it_on_and_the_default_is_off():
    assert load_config("cpu-mobilenet").postprocess.target_fallback is True
    assert load_config("tiny-test").postprocess.target_fallback is False


@pytest.mark.parametrize("value", ["2", "maybe"])
def test_a_bad_value_is_a_config_error(value):
    from streamseg.errors import ConfigError
    with pytest.raises(ConfigError, match="target_fallback"):
        load_config("cpu-mobilenet", [f"postprocess.target_fallback={value}"])
