"""Track lifecycle on scripted per-slot scores and masks (no network involved)."""
import numpy as np
import pytest

from streamseg.config import load_config
from streamseg.errors import ConfigError
from streamseg.tracking.config import TrackerConfig
from streamseg.tracking.lifecycle import FREE, TrackLifecycle


def _run(cfg, script, masks=None):
    """script: (T, Q) scores -> list of per-frame results."""
    life = TrackLifecycle(cfg)
    state = life.new_state(script.shape[1])
    out = []
    for t, scores in enumerate(script):
        out.append(life.update(state, scores, None if masks is None else masks[t]))
    return state, out


def _visible_ids(res):
    return {int(s): int(res.track_id[s]) for s in np.flatnonzero(res.visible)}


def test_births_keeps_misses_and_deaths_follow_thresholds():
    cfg = TrackerConfig(birth_threshold=0.5, keep_threshold=0.3, max_missed=3)
    q0 = [0.6] * 5 + [0.35] * 3 + [0.6] * 4  # born at once; between keep and birth it stays
    q1 = [0.4] * 3 + [0.55] + [0.1] * 3 + [0.7] * 5  # below birth; born f3; misses f4-f6 -> ends f6; reborn f7
    q2 = [0.0, 0.9, 0.2, 0.2, 0.45, 0.45, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # 2 misses then back: same ID
    q3 = [0.49] * 12  # never reaches birth
    script = np.array([q0, q1, q2, q3]).T
    state, res = _run(cfg, script)

    assert [_visible_ids(r) for r in res] == [
        {0: 1},
        {0: 1, 2: 2},
        {0: 1},  # slot 2 missed (0.2 < keep): not published, keeps its ID
        {0: 1, 1: 3},
        {0: 1, 2: 2},  # slot 2 back before D misses: same ID
        {0: 1, 2: 2},
        {0: 1},  # slot 1: third miss -> ended this frame
        {0: 1, 1: 4},  # a new track in the reset slot gets a new ID, 3 is not reused
        {0: 1, 1: 4},
        {0: 1, 1: 4},  # slot 2 ended at f8 (third miss)
        {0: 1, 1: 4},
        {0: 1, 1: 4},
    ]
    ended = [(t, int(s)) for t, r in enumerate(res) for s in np.flatnonzero(r.ended)]
    assert ended == [(6, 1), (8, 2)]
    assert all(np.array_equal(r.reset, r.ended) for r in res)  # no masks given: no duplicates
    assert state.track_id.tolist() == [1, 4, FREE, FREE]
    assert state.next_id == 5


def test_track_score_is_running_mean_of_visible_frames():
    cfg = TrackerConfig(birth_threshold=0.5, keep_threshold=0.3, max_missed=5, score_window=100)
    seq = [0.9, 0.6, 0.1, 0.7, 0.8]  # 0.1 is a miss: not part of the mean
    _, res = _run(cfg, np.array(seq)[:, None])
    assert res[0].score[0] == pytest.approx(0.9)
    assert res[1].score[0] == pytest.approx(0.75)
    assert not res[2].visible[0]
    assert res[3].score[0] == pytest.approx(np.mean([0.9, 0.6, 0.7]))
    assert res[4].score[0] == pytest.approx(np.mean([0.9, 0.6, 0.7, 0.8]))

    # With a window of 2 the mean becomes an EMA with weight 1/2 after the first two frames.
    cfg2 = TrackerConfig(birth_threshold=0.5, keep_threshold=0.3, max_missed=5, score_window=2)
    _, res = _run(cfg2, np.array([0.9, 0.6, 0.8])[:, None])
    assert res[2].score[0] == pytest.approx(0.75 + (0.8 - 0.75) / 2)


def test_empty_mask_score_zero_is_a_miss_even_with_zero_keep_threshold():
    cfg = TrackerConfig(birth_threshold=0.0, keep_threshold=0.0, max_missed=2)
    _, res = _run(cfg, np.array([[0.0], [0.4], [0.0], [0.0], [0.3]]))
    assert [bool(r.visible[0]) for r in res] == [False, True, False, False, True]
    assert [int(r.track_id[0]) for r in res] == [FREE, 1, 1, 1, 2]
    assert bool(res[3].ended[0])


def test_duplicate_birth_is_refused_and_its_slot_reset():
    cfg = TrackerConfig(birth_threshold=0.5, keep_threshold=0.3, max_missed=3, duplicate_iou=0.7)
    a = np.zeros((8, 8), bool)
    a[:4, :4] = True
    b = np.zeros((8, 8), bool)
    b[4:, 4:] = True
    near_a = a.copy()
    near_a[4, 0] = True  # IoU with a = 16/17
    masks = np.stack([np.stack([a, near_a, b]), np.stack([a, near_a, b])])
    _, res = _run(cfg, np.array([[0.6, 0.8, 0.7], [0.6, 0.8, 0.7]]), masks)
    # Frame 0: slot 1 (best score) is born, slot 0 duplicates it, slot 2 is elsewhere.
    assert _visible_ids(res[0]) == {1: 1, 2: 2}
    assert res[0].reset.tolist() == [True, False, False]
    assert not res[0].ended.any()
    # Frame 1: slot 0 still duplicates the visible track in slot 1.
    assert _visible_ids(res[1]) == {1: 1, 2: 2}
    assert res[1].reset.tolist() == [True, False, False]


def test_ids_never_reused_and_state_size_constant_over_2000_steps():
    cfg = TrackerConfig(birth_threshold=0.5, keep_threshold=0.3, max_missed=4)
    rng = np.random.default_rng(7)
    q = 16
    life = TrackLifecycle(cfg)
    state = life.new_state(q)
    size0 = state.nbytes()
    owner: dict[int, int] = {}
    last_seen: dict[int, int] = {}
    ended_ids = set()
    births = 0
    # Each slot alternates between "object present" and "absent" phases of random length.
    present = rng.random(q) < 0.5
    for t in range(2000):
        flip = rng.random(q) < 0.05
        present ^= flip
        scores = np.where(present, rng.uniform(0.35, 0.95, q), rng.uniform(0.0, 0.3, q))
        res = life.update(state, scores)
        births += int(res.born.sum())
        born = np.flatnonzero(res.born)
        for s in born[np.argsort(res.track_id[born])]:
            tid = int(res.track_id[s])
            assert tid not in owner and tid not in ended_ids  # fresh ID
            assert tid == max(owner, default=0) + 1  # IDs increase one by one
            owner[tid] = int(s)
        for s in np.flatnonzero(res.visible):
            tid = int(res.track_id[s])
            assert owner[tid] == s  # an ID stays in its slot
            assert tid not in ended_ids
            last_seen[tid] = t
        for s in np.flatnonzero(res.ended):
            ended_ids.add(int(res.track_id[s]))
        assert state.nbytes() == size0
    assert births > 100 and len(ended_ids) > 100  # the script exercised many lifecycles
    assert state.next_id == births + 1


def test_tracker_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="tracker.*threshold"):
        load_config(None, ["tracker.keep_threshold=0.9", "tracker.birth_threshold=0.5"])
    with pytest.raises(ConfigError, match="tracker.*score_window"):
        load_config(None, ["tracker.score_window=0"])


def _same_mask(t, q, shape=(8, 8)):
    """(T, Q, h, w) masks: every slot holds the same square in every frame."""
    m = np.zeros((t, q) + shape, dtype=bool)
    m[..., 2:6, 2:6] = True
    return m


def test_a_missed_track_is_not_duplicated_by_a_new_slot_on_its_mask():
    # The reviewed case: slot 0 born, then fades below keep while slot 1 rises on the same mask,
    # then both score high. One object, one ID: slot 1 takes track 1 over, slot 0 is reset.
    cfg = TrackerConfig(birth_threshold=0.5, keep_threshold=0.3, max_missed=5, duplicate_iou=0.7)
    script = np.array([[0.9, 0.0, 0.0], [0.2, 0.8, 0.0], [0.9, 0.8, 0.0]])
    _, res = _run(cfg, script, _same_mask(3, 3))
    assert [_visible_ids(r) for r in res] == [{0: 1}, {1: 1}, {1: 1}]
    assert res[1].reset.tolist() == [True, False, False]  # the faded slot restarts
    assert not res[1].born.any()
    assert res[2].reset.tolist() == [True, False, False]  # slot 0's new candidate is a duplicate


def test_two_live_tracks_on_one_mask_are_merged_into_the_older():
    cfg = TrackerConfig(birth_threshold=0.5, keep_threshold=0.3, max_missed=5, duplicate_iou=0.7)
    masks = np.zeros((3, 2, 8, 8), dtype=bool)
    masks[:, 0, 0:4, 0:4] = True  # frame 0-1: two different objects -> two tracks
    masks[:2, 1, 4:8, 4:8] = True
    masks[2, 1, 0:4, 0:4] = True  # frame 2: slot 1 drifts onto slot 0's object
    _, res = _run(cfg, np.full((3, 2), 0.9), masks)
    assert [_visible_ids(r) for r in res] == [{0: 1, 1: 2}, {0: 1, 1: 2}, {0: 1}]
    assert res[2].ended.tolist() == [False, True] and res[2].reset.tolist() == [False, True]


def test_different_objects_are_never_merged():
    cfg = TrackerConfig(duplicate_iou=0.5)
    masks = np.zeros((4, 2, 8, 8), dtype=bool)
    masks[:, 0, 0:4, 0:4] = True
    masks[:, 1, 0:4, 2:6] = True  # IoU 1/3 with slot 0
    _, res = _run(cfg, np.full((4, 2), 0.9), masks)
    assert all(_visible_ids(r) == {0: 1, 1: 2} for r in res)
