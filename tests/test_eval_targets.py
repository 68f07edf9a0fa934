"""DAVIS J and F against the published definition on hand-made masks (expected values worked out
by hand below), and `streamseg eval-targets` end to end (harness checked with an oracle)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from segmenter_helpers import TINY_CONFIG, run_cli

from streamseg.data.ytvis import decode_rle, image_root_for, load_ytvis
from streamseg.evaluation.davis import boundary_f, boundary_radius, region_j, seg2bmap, statistics
from streamseg.evaluation.targets import evaluate_targets, interior_point
from streamseg.interface import Instance, Tracks, Vocabulary


def square(h, w, r0, c0, k):
    m = np.zeros((h, w), bool)
    m[r0:r0 + k, c0:c0 + k] = True
    return m


def test_j_is_iou_and_one_for_two_empty_masks():
    a, b = square(20, 20, 2, 2, 4), square(20, 20, 2, 4, 4)
    assert region_j(a, b) == pytest.approx(8 / 24)  # 4x2 overlap, 16 + 16 - 8 union
    assert region_j(np.zeros((5, 5), bool), np.zeros((5, 5), bool)) == 1.0
    assert region_j(np.zeros((5, 5), bool), a[:5, :5]) == 0.0


def test_seg2bmap_marks_pixels_differing_from_east_south_southeast():
    # a k x k square away from the border: its last row and column, plus the background row above
    # and column left of it (k + 1 and k pixels): 4k pixels
    m = square(10, 10, 3, 3, 4)
    b = seg2bmap(m)
    expected = np.zeros_like(m)
    expected[6, 3:7] = True  # last row
    expected[3:7, 6] = True  # last column
    expected[2, 2:7] = True  # row above, from the column left of it
    expected[2:7, 2] = True  # column left
    assert np.array_equal(b, expected) and b.sum() == 16


def test_f_with_davis_tolerance_on_shifted_squares():
    # 50 x 50: diagonal 70.7, 0.008 of it = 0.57 -> a radius of 1 pixel (a plus-shaped disk)
    assert boundary_radius((50, 50)) == 1
    gt = square(50, 50, 10, 10, 10)
    # shifted by one column: every boundary pixel has the other boundary at distance 1 -> F = 1
    assert boundary_f(np.roll(gt, 1, axis=1), gt) == 1.0
    assert region_j(np.roll(gt, 1, axis=1), gt) == pytest.approx(90 / 110)
    # shifted by three: counted by hand, 20 of the 40 predicted boundary pixels lie within the
    # plus of a true one (8 on the bottom row, 9 on the top row, 3 on the left column) and 20 of
    # the 40 true ones likewise -> precision = recall = 0.5 -> F = 0.5
    assert boundary_f(np.roll(gt, 3, axis=1), gt) == pytest.approx(0.5)
    assert region_j(np.roll(gt, 3, axis=1), gt) == pytest.approx(70 / 130)
    empty = np.zeros_like(gt)
    assert boundary_f(empty, empty) == 1.0
    assert boundary_f(empty, gt) == 0.0 and boundary_f(gt, empty) == 0.0
    # 300 x 400: diagonal 500 -> 4 pixels; a 2-column shift is inside the tolerance
    big = square(300, 400, 100, 100, 50)
    assert boundary_radius((300, 400)) == 4
    assert boundary_f(np.roll(big, 4, axis=1), big) == 1.0
    assert boundary_f(np.roll(big, 6, axis=1), big) < 1.0


def test_statistics_mean_recall_and_davis_decay():
    v = np.array([1, 1, 0.5, 0.5, 0, 0, 0, 0], float)
    s = statistics(v)
    # DAVIS's bins over 8 frames: indices [0:3], [2:5], [4:6], [5:8]
    assert s["mean"] == pytest.approx(3 / 8)
    assert s["recall"] == pytest.approx(2 / 8)  # only values > 0.5
    assert s["decay"] == pytest.approx(2.5 / 3 - 0.0)
    assert s["bins"] == pytest.approx([2.5 / 3, 1 / 3, 0.0, 0.0])  # (1+1+.5)/3, (.5+.5+0)/3, 0, 0


def test_interior_point_is_the_deepest_pixel():
    m = np.zeros((9, 20), bool)
    m[1:8, 1:8] = True  # a 7x7 square: centre (4, 4)
    m[4, 8:19] = True  # a thin tail
    assert interior_point(m) == (4.0, 4.0)


class _Oracle:
    """A segmenter that returns each target's ground truth (or nothing): checks the harness."""

    def __init__(self, gt, blind=False):
        self.gt, self.blind = gt, blind

    def init_state(self, vocabulary):
        return {"targets": {}, "video": None, "t": 0, "next": 1}

    def add_target(self, state, name, **prompt):
        tid = state["next"]
        state["next"] += 1
        state["targets"][tid] = int(name[3:])
        return tid

    def step(self, state, frame):
        out = []
        if not self.blind:
            for tid, ann_id in state["targets"].items():
                ann = next(a for a in self.gt.annotations if a.id == ann_id)
                seg = ann.segmentations[frame.index]
                if seg is not None:
                    m = decode_rle(seg)
                    inst = Instance.from_mask(tid, -1, "t", 1.0, m, target=True)
                    if inst is not None:
                        out.append(inst)
        return Tracks(frame.index, frame.width, frame.height, out)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    r = run_cli("data", "synth", "--out", str(out), "--videos", "1", "--val-videos", "2", "--frames", "6",
                "--width", "96", "--height", "64", "--instances", "2", "--seed", "4")
    assert r.returncode == 0, r.stderr
    return out


def test_harness_oracle_scores_one_and_blind_scores_the_absent_frames(synth):
    gt = load_ytvis(synth / "valid.json")
    root = image_root_for(gt.path)
    vocab = Vocabulary(names=[])
    s = evaluate_targets(_Oracle(gt), gt, root, "point", vocab).summary()
    assert s["objects"] > 0 and s["J"] == 1.0 and s["F"] == 1.0 and s["J&F"] == 1.0
    blind = evaluate_targets(_Oracle(gt, blind=True), gt, root, "mask", vocab)
    # an empty prediction scores 1 exactly on the frames (after the prompt) where the object is absent
    for obj in blind.objects:
        ann = next(a for a in gt.annotations if a.id == obj["object"])
        vis = [s is not None and decode_rle(s).any() for s in ann.segmentations]
        first = vis.index(True)
        absent = [not v for v in vis[first + 1:]]
        assert obj["J"]["mean"] == pytest.approx(np.mean(absent))


def test_jf_by_prompt_area_groups_objects_by_their_prompt_masks_area(synth):
    gt = load_ytvis(synth / "valid.json")
    blind = evaluate_targets(_Oracle(gt, blind=True), gt, image_root_for(gt.path), "mask", Vocabulary(names=[]))
    groups = blind.summary()["J&F_by_prompt_area"]
    assert list(groups) == ["small", "medium", "large"]
    assert sum(g["objects"] for g in groups.values()) == len(blind.objects) > 0
    for obj in blind.objects:
        ann = next(a for a in gt.annotations if a.id == obj["object"])
        areas = [int(decode_rle(s).sum()) if s is not None else 0 for s in ann.segmentations]
        first = next(t for t, a in enumerate(areas) if a > 0)
        assert (obj["prompt_frame"], obj["prompt_area"]) == (first, areas[first])
    for name, (lo, hi) in (("small", (0, 1024)), ("medium", (1024, 9216)), ("large", (9216, 10 ** 9))):
        members = [(o["J"]["mean"] + o["F"]["mean"]) / 2 for o in blind.objects if lo <= o["prompt_area"] < hi]
        assert groups[name]["objects"] == len(members)
        assert groups[name]["J&F"] == (pytest.approx(np.mean(members)) if members else -1.0)


def test_eval_targets_cli_last_line_is_json_with_j_f_jf(synth):
    r = run_cli("eval-targets", "--config", str(TINY_CONFIG), "--data", str(synth), "--prompt", "box", "--json")
    assert r.returncode == 0, r.stderr
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"J", "F", "J&F"} <= set(last) and last["prompt"] == "box" and last["objects"] > 0
    assert 0.0 <= last["J"] <= 1.0 and 0.0 <= last["F"] <= 1.0
    assert last["J&F"] == pytest.approx((last["J"] + last["F"]) / 2)
    bad = run_cli("eval-targets", "--config", str(TINY_CONFIG), "--data", str(synth), "--prompt", "scribble")
    assert bad.returncode != 0 and "invalid choice" in bad.stderr
    neg = run_cli("eval-targets", "--config", str(TINY_CONFIG), "--data", str(synth), "--min-prompt-area", "-1")
    assert neg.returncode != 0 and "--min-prompt-area must be >= 0" in neg.stderr.strip().splitlines()[-1]


def test_eval_targets_without_config_runs_the_shipped_model(synth):
    """--config is optional, as for eval: the shipped CPU model follows the prompted objects."""
    r = run_cli("eval-targets", "--data", str(synth), "--prompt", "mask", "--max-videos", "1", "--json")
    assert r.returncode == 0, r.stderr
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert last["objects"] > 0 and last["J"] > 0.5  # the trained model (0.77 here; tiny-test: 0.001)


def test_min_prompt_area_prompts_on_the_first_frame_showing_that_much(synth):
    gt = load_ytvis(synth / "valid.json")
    areas = {a.id: [int(decode_rle(s).sum()) if s is not None else 0 for s in a.segmentations] for a in gt.annotations}
    least = int(np.median([max(v) for v in areas.values()]))  # some objects never show this much
    scores = evaluate_targets(_Oracle(gt, blind=True), gt, image_root_for(gt.path), "box", Vocabulary(names=[]),
                              min_prompt_area=least)
    expected = {i: next(t for t, a in enumerate(v) if a >= least) for i, v in areas.items()
                if any(a >= least for a in v[:-1])}
    assert 0 < len(expected) < len(areas)
    assert {o["object"]: o["prompt_frame"] for o in scores.objects} == expected
    assert all(o["prompt_area"] >= least for o in scores.objects)
