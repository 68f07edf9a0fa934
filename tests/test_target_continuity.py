"""postprocess.target_continuity / track_continuity: a prompted target (or a class track) keeps
only the mask pieces that touch its previous mask (grown by N cells); when none touches it shows
nothing and is picked up again only where it was last seen."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from segmenter_helpers import random_vocabulary, scene_frames, tiny_config

from streamseg.config import load_config
from streamseg.errors import ConfigError
from streamseg.predictor.postprocess import continuous_pieces
from streamseg.predictor.segmenter import build_segmenter


def _blobs(*boxes: tuple[int, int, int, int], shape=(24, 40)) -> torch.Tensor:
    """Logits (h, w): -3 background, 2 + a ramp inside each (y0, y1, x0, x1) box."""
    x = torch.full(shape, -3.0)
    for y0, y1, x0, x1 in boxes:
        x[y0:y1, x0:x1] = 2.0 + torch.arange((y1 - y0) * (x1 - x0), dtype=torch.float32).reshape(y1 - y0, x1 - x0) / 100
    return x


def _fg(t: torch.Tensor) -> np.ndarray:
    return (t >= 0).numpy()


def test_a_moving_target_keeps_its_piece_and_drops_far_ones():
    ref = None
    first = _blobs((4, 8, 4, 8))
    out, ref = continuous_pieces(first, 0.0, ref, 1)
    assert out is first and np.array_equal(ref, _fg(first))  # no reference yet: all kept
    moved = _blobs((5, 9, 5, 9), (16, 20, 30, 34))  # one cell on, and a second object far away
    out, ref = continuous_pieces(moved, 0.0, ref, 1)
    assert np.array_equal(_fg(out), _fg(_blobs((5, 9, 5, 9))))
    assert torch.equal(out[5:9, 5:9], moved[5:9, 5:9])  # the kept piece's logits untouched
    assert np.array_equal(ref, _fg(_blobs((5, 9, 5, 9))))
    jumped = _blobs((16, 20, 30, 34))  # its query took the other object: nothing shown
    out, ref2 = continuous_pieces(jumped, 0.0, ref, 1)
    assert not _fg(out).any() and ref2 is ref  # the last place it was seen is kept
    back = _blobs((6, 10, 6, 10))  # seen again next to where it was
    out, ref = continuous_pieces(back, 0.0, ref2, 1)
    assert out is back and np.array_equal(ref, _fg(back))


@pytest.mark.parametrize("grow, kept", [(0, False), (1, False), (2, True), (3, True)])
def test_grow_is_the_chebyshev_distance_a_piece_may_move(grow, kept):
    ref = _fg(_blobs((4, 8, 4, 8)))
    # its nearest cell (9, 9) is 2 cells (diagonally) from the reference's corner (7, 7)
    out, _ = continuous_pieces(_blobs((9, 13, 9, 13)), 0.0, ref, grow)
    assert _fg(out).any() == kept


def test_off_size_change_and_empty_frames():
    logits = _blobs((4, 8, 4, 8))
    ref = _fg(_blobs((16, 20, 30, 34)))
    out, r = continuous_pieces(logits, 0.0, ref, -1)
    assert out is logits and r is None  # off: every piece, no state
    other = _fg(_blobs((1, 3, 1, 3), shape=(12, 20)))  # the source changed size: start again
    out, r = continuous_pieces(logits, 0.0, other, 1)
    assert out is logits and np.array_equal(r, _fg(logits))
    empty = torch.full((24, 40), -3.0)
    out, r = continuous_pieces(empty, 0.0, ref, 1)
    assert out is empty and r is ref
    out, r = continuous_pieces(empty, 0.0, None, 1)
    assert r is None  # nothing to hold on to yet: the next mask becomes the reference


def _run_with_masks(continuity: int, masks: list[list[tuple[int, int, int, int]]]) -> list[list]:
    """The real tiny segmenter with one mask target, its decoded target masks replaced by blobs."""
    torch.manual_seed(0)
    seg = build_segmenter(tiny_config(f"postprocess.target_continuity={continuity}"))
    frames = scene_frames(len(masks))
    state = seg.init_state(random_vocabulary())
    tid = seg.add_target(state, mask=frames[0].truth[0].mask, name="cup")
    step, t = seg.model.step, iter(range(len(masks)))

    def fake(*args, **kwargs):
        out = step(*args, **kwargs)
        shape = out.target_masks.shape[-2:]
        out.target_masks = _blobs(*masks[next(t)], shape=shape)[None, None]
        return out

    seg.model.step = fake
    shown = []
    for f in frames:
        tracks = seg.step(state, f)
        shown.append([i for i in tracks.instances if i.target and i.track_id == tid])
    return shown


def test_the_segmenter_hides_a_target_that_jumped_and_keeps_its_id():
    seq = [[(2, 5, 2, 5)], [(3, 6, 3, 6)], [(10, 13, 20, 24)], [(3, 7, 4, 7)]]
    gated = _run_with_masks(1, seq)
    assert [len(s) for s in gated] == [1, 1, 0, 1]
    plain = _run_with_masks(-1, seq)
    assert [len(s) for s in plain] == [1, 1, 1, 1]  # off: the jump is published under its ID
    h, w = 100, 150  # scene_frames' size; mask cells are 4 input pixels, the input is resized
    far = plain[2][0].full_mask(h, w)
    near = gated[3][0].full_mask(h, w)
    assert np.nonzero(far)[1].mean() > 2 * np.nonzero(near)[1].mean()


def _run_class_track(continuity: int, masks: list[tuple[int, int, int, int]]) -> list[list]:
    """The real tiny segmenter (propagate mode: slot = track); query 0's mask replaced by a blob,
    every other query's emptied (so it shows nothing)."""
    torch.manual_seed(0)
    seg = build_segmenter(tiny_config(f"postprocess.track_continuity={continuity}"))
    frames = scene_frames(len(masks))
    state = seg.init_state(random_vocabulary())
    step, t = seg.model.step, iter(range(len(masks)))

    def fake(*args, **kwargs):
        out = step(*args, **kwargs)
        pm = torch.full_like(out.pred_masks, -3.0)
        pm[0, 0] = _blobs(masks[next(t)], shape=pm.shape[-2:])
        out.pred_masks = pm
        return out

    seg.model.step = fake
    return [seg.step(state, f).instances for f in frames]


def test_a_class_track_that_jumped_shows_nothing_until_it_is_back():
    seq = [(2, 5, 2, 5), (3, 6, 3, 6), (10, 13, 20, 24), (10, 13, 20, 24), (3, 7, 4, 7)]
    gated = _run_class_track(1, seq)
    assert [len(s) for s in gated] == [1, 1, 0, 0, 1]
    assert len({i.track_id for s in gated for i in s}) == 1  # the same track, hidden, not ended
    plain = _run_class_track(-1, seq)
    assert [len(s) for s in plain] == [1, 1, 1, 1, 1]
    assert [i.track_id for s in plain for i in s][0] == gated[0][0].track_id


def test_config_range_and_the_cpu_config():
    for key in ("target_continuity", "track_continuity"):
        with pytest.raises(ConfigError, match=key):
            load_config("cpu-mobilenet", [f"postprocess.{key}=-2"])
    pp = load_config("cpu-mobilenet").postprocess
    assert pp.target_continuity == 1 and pp.track_continuity == 1
