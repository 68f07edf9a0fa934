"""tracker.score_ramp: a young track's published score is its running mean x visible frames /
score_ramp, in both trackers (slot tracks and embedding-matched tracks); the running mean itself,
the lifecycle and the IDs are unchanged."""
import numpy as np
import pytest

from streamseg.config import load_config
from streamseg.errors import ConfigError
from streamseg.tracking.config import TrackerConfig
from streamseg.tracking.lifecycle import TrackLifecycle
from streamseg.tracking.match import EmbeddingMatcher

RAW = [0.9, 0.6, 0.9, 0.6, 0.9, 0.6, 0.9]  # one object's per-frame scores, frame 3 a miss below


def _expected(ramp: int, raw: list[float], window: int = 30) -> list[float]:
    """Running mean of the visible frames' scores, times min(1, visible frames / ramp)."""
    out, seen = [], []
    for s in raw:
        seen.append(s)
        factor = 1.0 if ramp == 0 else min(1.0, len(seen) / ramp)
        out.append(float(np.mean(seen[-window:])) * factor)
    return out


@pytest.mark.parametrize("ramp", [0, 1, 4])
def test_slot_tracks_publish_the_ramped_mean(ramp):
    cfg = TrackerConfig(birth_threshold=0.5, keep_threshold=0.3, max_missed=3, score_ramp=ramp)
    life = TrackLifecycle(cfg)
    state = life.new_state(2)
    published = []
    for t, s in enumerate(RAW):
        res = life.update(state, np.array([s, 0.0]))
        assert res.visible[0] and res.track_id[0] == 1
        published.append(float(res.score[0]))
        if t == 3:  # a missed frame: not published, not counted
            miss = life.update(state, np.array([0.1, 0.0]))
            assert not miss.visible[0] and miss.track_id[0] == 1
    assert published == pytest.approx(_expected(ramp, RAW))
    assert float(state.score[0]) == pytest.approx(np.mean(RAW))  # the running mean is not ramped


def test_a_track_handed_to_another_slot_keeps_its_age():
    cfg = TrackerConfig(birth_threshold=0.5, keep_threshold=0.3, max_missed=3, score_ramp=4)
    life = TrackLifecycle(cfg)
    state = life.new_state(2)
    mask = np.zeros((2, 4, 4), dtype=bool)
    mask[:, :2, :2] = True
    for _ in range(2):
        life.update(state, np.array([0.8, 0.0]), mask)
    res = life.update(state, np.array([0.0, 0.8]), mask)  # slot 0 fades, slot 1 takes the object
    assert res.track_id[1] == 1 and res.visible[1]
    assert float(res.score[1]) == pytest.approx(0.8 * 3 / 4)


def test_matched_tracks_publish_the_ramped_mean():
    cfg = TrackerConfig(mode="match", birth_threshold=0.5, keep_threshold=0.3, max_missed=3, score_ramp=4)
    matcher = EmbeddingMatcher(cfg)
    state = matcher.new_state(4, 2)
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    published = []
    for t, s in enumerate(RAW):
        res = matcher.update(state, np.vstack([b, a]) if t % 2 else np.vstack([a, b]),
                             np.array([0.0, s]) if t % 2 else np.array([s, 0.0]))  # a's query moves
        q = 1 if t % 2 else 0
        assert res.track_id[q] == 1
        published.append(float(res.score[q]))
    assert published == pytest.approx(_expected(4, RAW))


def test_config_range_and_the_cpu_config():
    for bad in ("-1", "31"):
        with pytest.raises(ConfigError, match="score_ramp"):
            load_config("cpu-mobilenet", [f"tracker.score_ramp={bad}"])
    assert load_config("cpu-mobilenet").tracker.score_ramp == 5
