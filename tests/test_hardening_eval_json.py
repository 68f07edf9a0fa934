"""eval-json never hangs or tracebacks on hostile results files (issue 10, item 1 and part of 6).

pycocotools trusts RLE counts: garbage strings made its C decoder spin forever, so every counts
value read from a file is checked by the project's own parser first. Real CLI subprocesses with a
timeout: a hang fails the test instead of the suite.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from eval_helpers import make_gt, rect

from streamseg.data.ytvis import DatasetError, rle_to_json, to_rle, write_ytvis

H, W = 8, 10


def _gt(tmp_path: Path) -> Path:
    gt = make_gt([(1, H, W, 2)], [(1, 1, [rect(H, W, 1, 4, 2, 6), rect(H, W, 2, 5, 2, 6)])])
    path = tmp_path / "gt.json"
    write_ytvis(path, gt)
    return path


def _eval_json(tmp_path: Path, results_text: str) -> subprocess.CompletedProcess:
    res = tmp_path / "results.json"
    res.write_text(results_text)
    return subprocess.run([sys.executable, "-m", "streamseg", "eval-json", str(_gt(tmp_path)), str(res)],
                          capture_output=True, text=True, timeout=30, cwd=Path(__file__).parent.parent)


def _tube(counts) -> str:
    seg = {"size": [H, W], "counts": counts}
    return json.dumps([{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [seg, None]}])


def _one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("counts", ["0l", "oooooooooooooooo", "", "0", "Y1", "9é"])
def test_garbage_counts_string_is_a_one_line_error(tmp_path, counts):
    _one_line_error(_eval_json(tmp_path, _tube(counts)), "result 0 frame 0", "counts")


@pytest.mark.parametrize("counts", [[-5, 85], [10, 20], [80.0], [True, 79], ["80"]])
def test_bad_list_counts_are_a_one_line_error(tmp_path, counts):
    _one_line_error(_eval_json(tmp_path, _tube(counts)), "result 0 frame 0", "counts")


def test_deeply_nested_json_is_a_one_line_error(tmp_path):
    line = _one_line_error(_eval_json(tmp_path, "[" * 100_000 + "]" * 100_000), "nested too deeply")
    assert "results.json" in line


def test_valid_list_and_string_counts_still_evaluate(tmp_path):
    as_list = {"size": [H, W], "counts": _runs(rect(H, W, 1, 4, 2, 6))}
    as_string = rle_to_json(to_rle({"size": [H, W], "counts": _runs(rect(H, W, 2, 5, 2, 6))}, H, W))
    assert isinstance(as_string["counts"], str)
    text = json.dumps([{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [as_list, as_string]}])
    proc = _eval_json(tmp_path, text)
    assert proc.returncode == 0, proc.stderr
    assert "1.000" in proc.stdout


def _runs(m: np.ndarray) -> list[int]:
    flat = m.T.ravel().astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.r_[0, edges, flat.size]
    runs = [int(r) for r in np.diff(bounds)]
    return ([0] + runs) if flat[0] else runs


def test_to_rle_rejects_counts_that_do_not_cover_the_frame():
    with pytest.raises(DatasetError, match="cover"):
        to_rle({"size": [H, W], "counts": "1"}, H, W)  # one run of 1 pixel, not 80
