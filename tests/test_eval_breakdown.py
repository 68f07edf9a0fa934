"""eval --breakdown: frame recall, fragments, ID switches and the stitched AP on hand-made cases."""
from __future__ import annotations

import json

import numpy as np
import pytest
from segmenter_helpers import run_cli

from streamseg.data.ytvis import write_ytvis
from streamseg.evaluation.breakdown import breakdown
from streamseg.evaluation.results import write_results
from streamseg.evaluation.ytvis import evaluate
from tests.eval_helpers import make_gt, rect, result

H = W = 10
A = rect(H, W, 0, 4, 0, 4)  # object A, 16 px, on frames 0-4
B = rect(H, W, 6, 10, 6, 10)  # object B, 16 px, on frames 0-3
B_OFF = rect(H, W, 6, 10, 9, 10)  # 4 px of B: IoU 0.25


def _case():
    gt = make_gt([(1, H, W, 5)], [(1, 1, [A] * 5), (1, 2, [B] * 4 + [None])])
    results = [
        result(1, 1, 0.9, [A, A, None, None, None]),  # A's first track ...
        result(1, 1, 0.8, [None, None, A, A, A]),  # ... and its second: one object, two IDs
        result(1, 2, 0.7, [B, B, B, B_OFF, None]),  # B, off on its last frame
    ]
    return gt, results


def test_frame_recall_fragments_and_switches():
    gt, results = _case()
    b = breakdown(gt, results)
    assert b["object_frames"] == 9 and b["frame_recall"] == pytest.approx(8 / 9)
    assert b["frame_recall_by_area"] == {"small": pytest.approx(8 / 9), "medium": -1.0, "large": -1.0}
    assert b["objects"] == 2 and b["fragments_per_object"] == 1.5 and b["objects_never_covered"] == 0
    assert b["id_switches"] == 1


def test_stitched_ap_is_the_ap_of_the_merged_tubes():
    gt, results = _case()
    b = breakdown(gt, results)
    merged = [result(1, 1, 0.85, [A] * 5), results[2]]  # A's two tracks as one, by hand
    assert b["stitched_AP"] == pytest.approx(evaluate(gt, merged).stats["AP"])
    # A's merged tube is exact (1.0 at every threshold); B's IoU is 52/64 = 0.8125, a hit at
    # the 7 thresholds 0.5 ... 0.8: mean (1.0 + 0.7) / 2
    assert b["stitched_AP"] == pytest.approx(0.85)
    assert b["AP"] == pytest.approx(evaluate(gt, results).stats["AP"]) and b["AP"] < b["stitched_AP"]


def test_a_duplicate_that_also_covers_is_no_switch_and_a_missed_object_counts():
    gt = make_gt([(1, H, W, 3)], [(1, 1, [A] * 3), (1, 2, [B] * 3)])
    results = [result(1, 1, 0.9, [A, A, A]), result(1, 1, 0.5, [None, A, A])]  # a late duplicate
    b = breakdown(gt, results)
    assert b["id_switches"] == 0 and b["fragments_per_object"] == 0.5  # A: 1 tube, B: none
    assert b["objects_never_covered"] == 1 and b["frame_recall"] == pytest.approx(0.5)
    big = rect(200, 200, 0, 100, 0, 100)  # 10,000 px: COCO's "large" per frame
    gt = make_gt([(1, 200, 200, 1)], [(1, 1, [big])])
    b = breakdown(gt, [result(1, 1, 0.9, [big])])
    assert b["frame_recall_by_area"] == {"small": -1.0, "medium": -1.0, "large": 1.0}
    assert b["stitched_AP"] == b["AP"] == pytest.approx(1.0)


def test_eval_json_cli_prints_the_breakdown(tmp_path):
    gt, results = _case()
    write_ytvis(tmp_path / "gt.json", gt)
    write_results(tmp_path / "res.json", results)
    out = run_cli("eval-json", str(tmp_path / "gt.json"), str(tmp_path / "res.json"), "--breakdown", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["AP"] == pytest.approx(evaluate(gt, results).stats["AP"])
    assert got["breakdown"]["id_switches"] == 1 and got["breakdown"]["stitched_AP"] == pytest.approx(0.85)
    table = run_cli("eval-json", str(tmp_path / "gt.json"), str(tmp_path / "res.json"), "--breakdown")
    assert table.returncode == 0 and "frame recall (IoU >= 0.5): 0.889 of 9 object-frames" in table.stdout
    assert np.isclose(float(table.stdout.split("stitched into one tube: AP ")[1].split()[0]), 0.85)
