"""Embedding matching (tracker.mode: match) on hand-made query embeddings, scores and masks."""
import numpy as np
import pytest

from streamseg.config import load_config
from streamseg.errors import ConfigError
from streamseg.tracking.config import TrackerConfig
from streamseg.tracking.lifecycle import FREE
from streamseg.tracking.match import EmbeddingMatcher

DIM = 8


def objects(n: int, seed: int = 0) -> np.ndarray:
    """n clearly different unit embeddings (one object each)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    return q[:n].astype(np.float32)


def noisy(e: np.ndarray, rng: np.random.Generator, scale: float = 0.05) -> np.ndarray:
    return (e + rng.normal(scale=scale, size=e.shape)).astype(np.float32)


def ids_by_object(res, order: np.ndarray) -> dict[int, int]:
    """object -> track ID, given which object each query showed (order[query] = object)."""
    return {int(order[q]): int(res.track_id[q]) for q in range(len(order)) if res.track_id[q] != FREE}


def test_swapped_query_order_keeps_ids_and_a_new_object_gets_a_new_id():
    cfg = TrackerConfig(mode="match", birth_threshold=0.5, keep_threshold=0.3, max_missed=3)
    matcher = EmbeddingMatcher(cfg)
    state = matcher.new_state(6, DIM)
    obj = objects(4)
    rng = np.random.default_rng(1)
    first = {}
    for t in range(6):
        order = rng.permutation(3)  # objects 0-2 in a different query each frame
        res = matcher.update(state, noisy(obj[order], rng), np.full(3, 0.8))
        got = ids_by_object(res, order)
        if t == 0:
            first = got
            assert sorted(got.values()) == [1, 2, 3] and res.born.all()
        assert got == first, f"frame {t}"
        assert not res.born.any() or t == 0
    # object 3 appears (query 0 of 4): a new ID, the others keep theirs
    order = np.array([3, 2, 0, 1])
    res = matcher.update(state, noisy(obj[order], rng), np.full(4, 0.8))
    got = ids_by_object(res, order)
    assert got == {**first, 3: 4} and res.born.tolist() == [True, False, False, False]


def test_a_missed_object_ends_after_the_patience_and_a_return_before_keeps_its_id():
    cfg = TrackerConfig(mode="match", birth_threshold=0.5, keep_threshold=0.3, max_missed=3)
    matcher = EmbeddingMatcher(cfg)
    state = matcher.new_state(4, DIM)
    obj = objects(2)
    res = matcher.update(state, obj, np.array([0.9, 0.9]))
    a, b = res.track_id.tolist()
    # b missed twice (score below keep), back on the third frame: same ID
    for _ in range(2):
        res = matcher.update(state, obj, np.array([0.9, 0.1]))
        assert res.track_id.tolist() == [a, FREE] and res.ended == []
    res = matcher.update(state, obj[::-1].copy(), np.array([0.9, 0.9]))
    assert res.track_id.tolist() == [b, a]
    # now b is absent for max_missed frames: it ends on the third miss
    ended = []
    for t in range(3):
        res = matcher.update(state, obj[:1], np.array([0.9]))
        assert res.track_id.tolist() == [a]
        ended.append(res.ended)
    assert ended == [[], [], [b]]
    res = matcher.update(state, obj, np.array([0.9, 0.9]))  # b's object again: a new track
    assert res.track_id.tolist() == [a, b + 1] and res.born.tolist() == [False, True]


def test_thresholds_duplicates_and_capacity():
    cfg = TrackerConfig(mode="match", birth_threshold=0.5, keep_threshold=0.3, max_missed=2,
                        match_threshold=0.8, duplicate_iou=0.5)
    matcher = EmbeddingMatcher(cfg)
    state = matcher.new_state(2, DIM)
    obj = objects(4)
    # 0.4: kept but below birth, no track; 0.6: born
    res = matcher.update(state, obj[:2], np.array([0.4, 0.6]))
    assert res.track_id.tolist() == [FREE, 1]
    # a query too unlike track 1 (cosine < match_threshold) does not join it: a new track
    res = matcher.update(state, obj[2:3], np.array([0.9]))
    assert res.track_id.tolist() == [2]
    # capacity 2, both rows live: a third object is not born
    res = matcher.update(state, obj, np.array([0.9, 0.9, 0.9, 0.9]))
    assert res.track_id.tolist() == [FREE, 1, 2, FREE]
    # a birth candidate on a visible track's mask is a duplicate and refused
    state = matcher.new_state(4, DIM)
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[:, :2, :2] = True
    matcher.update(state, obj[:1], np.array([0.9]), masks[:1])
    res = matcher.update(state, obj[:2], np.array([0.9, 0.9]), masks)
    assert res.track_id.tolist() == [1, FREE] and not res.born.any()


def test_state_is_bounded_over_2000_steps_with_churn():
    cfg = TrackerConfig(mode="match", max_missed=5)
    matcher = EmbeddingMatcher(cfg)
    state = matcher.new_state(10, DIM)
    size = state.nbytes()
    rng = np.random.default_rng(0)
    seen_ids = set()
    for t in range(2000):
        k = int(rng.integers(0, 8))
        emb = rng.normal(size=(k, DIM)).astype(np.float32)
        res = matcher.update(state, emb, rng.uniform(0, 1, size=k))
        seen_ids.update(int(i) for i in res.track_id if i != FREE)
        assert state.nbytes() == size and state.embed.shape == (10, DIM)
        live = state.track_id[state.track_id != FREE]
        assert len(set(live.tolist())) == live.size  # no ID twice
    assert state.next_id > 100 and max(seen_ids) < state.next_id


def test_config_mode_and_ranges():
    assert load_config(None, ["tracker.mode=match"]).tracker.mode == "match"
    with pytest.raises(ConfigError, match="tracker.mode"):
        load_config(None, ["tracker.mode=hungarian"])
    with pytest.raises(ConfigError, match="embed_momentum"):
        load_config(None, ["tracker.embed_momentum=1.0"])
