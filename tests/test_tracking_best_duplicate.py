"""tracker.best_duplicate: of two queries on one object, the better-scoring one is what its track
shows (mask and class), same ID."""
import numpy as np
from segmenter_helpers import REPO

from streamseg.config import load_config
from streamseg.tracking.config import TrackerConfig
from streamseg.tracking.lifecycle import FREE
from streamseg.tracking.match import EmbeddingMatcher

DIM = 8


def _masks(*boxes: tuple[int, int, int, int]) -> np.ndarray:
    out = np.zeros((len(boxes), 20, 20), dtype=bool)
    for m, (y0, y1, x0, x1) in zip(out, boxes):
        m[y0:y1, x0:x1] = True
    return out


def _run(best_duplicate: bool) -> tuple[list, list]:
    cfg = TrackerConfig(mode="match", match_threshold=0.5, embed_momentum=0.5, best_duplicate=best_duplicate)
    matcher = EmbeddingMatcher(cfg)
    state = matcher.new_state(4, DIM)
    a, b = np.eye(DIM, dtype=np.float32)[:2]
    one = _masks((2, 12, 2, 12), (2, 12, 3, 12))  # query 1's mask: IoU 0.9 with query 0's
    # frame 0: only query 0 is sure of the object; query 1 joins later, surer, with another embedding
    r0 = matcher.update(state, np.stack([a, b]), np.array([0.8, 0.1]), one)
    r1 = matcher.update(state, np.stack([a, b]), np.array([0.6, 0.9]), one)
    r2 = matcher.update(state, np.stack([a, b]), np.array([0.7, 0.65]), one)
    return [r.track_id.tolist() for r in (r0, r1, r2)], [r.born.tolist() for r in (r0, r1, r2)]


def test_the_surer_duplicate_takes_over_its_track_and_the_id_stays():
    ids, born = _run(best_duplicate=True)
    assert ids[0] == [1, FREE] and born[0] == [True, False]
    assert ids[1] == [FREE, 1]  # query 1 (0.9 > 0.6) shows track 1; no second track is born
    assert not born[1][1]
    # frame 2: the track's embedding moved half-way to query 1's, so it matches both equally;
    # whichever it matched, the surer one (query 0, 0.7) shows it
    assert ids[2] == [1, FREE] and not any(born[2])


def test_off_the_first_born_query_keeps_its_track_and_the_duplicate_stays_hidden():
    ids, born = _run(best_duplicate=False)
    assert ids == [[1, FREE], [1, FREE], [1, FREE]] and not any(born[1] + born[2])


def test_a_duplicate_that_scores_lower_or_overlaps_less_changes_nothing():
    cfg = TrackerConfig(mode="match", best_duplicate=True)
    matcher = EmbeddingMatcher(cfg)
    state = matcher.new_state(4, DIM)
    a, b, c = np.eye(DIM, dtype=np.float32)[:3]
    masks = _masks((2, 12, 2, 12), (2, 12, 3, 12), (2, 12, 7, 17))  # 2: IoU 0.33 with 0
    matcher.update(state, a[None], np.array([0.8]), masks[:1])
    res = matcher.update(state, np.stack([a, b, c]), np.array([0.8, 0.7, 0.95]), masks)
    assert res.track_id[0] == 1 and res.track_id[1] == FREE  # lower: hidden as before
    assert res.track_id[2] == 2 and res.born[2]  # not a duplicate: its own new track


def test_the_cpu_config_shows_the_better_duplicate():
    assert load_config(REPO / "configs" / "cpu-mobilenet.yaml").tracker.best_duplicate
