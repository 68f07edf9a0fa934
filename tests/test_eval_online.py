"""Online evaluation (tracks -> result tubes) and the eval-json command."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from streamseg.data.frames import write_jpeg
from streamseg.data.synth import SynthSpec, write_synthetic
from streamseg.data.ytvis import DatasetError, dataset_to_json, decode_rle, image_root_for, load_ytvis
from streamseg.engine.ground_truth import GroundTruthSegmenter
from streamseg.evaluation.online import run_online, run_video
from streamseg.evaluation.results import read_results, write_results
from streamseg.evaluation.ytvis import evaluate
from streamseg.interface import Instance, Tracks, Vocabulary
from tests.eval_helpers import make_gt, rect, result


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_eval")
    write_synthetic(SynthSpec(out=str(out), videos=1, val_videos=2, seed=11, frames=5, width=80, height=64))
    return out


def test_ground_truth_double_scores_one(synth):
    gt = load_ytvis(synth / "valid.json")
    vocab = Vocabulary([c.name for c in gt.categories])
    run = run_online(GroundTruthSegmenter(), gt, image_root_for(gt.path), vocab, attach_truth=True)
    assert run.frames == 10 and len(run.results) == len(gt.annotations) > 0
    stats = evaluate(gt, run.results).stats
    assert stats["AP"] == pytest.approx(1.0) and stats["AR100"] == pytest.approx(1.0)
    # --max-videos: only the first video runs.
    one = run_online(GroundTruthSegmenter(), gt, image_root_for(gt.path), vocab, max_videos=1, attach_truth=True)
    assert one.videos == [gt.videos[0].id] and {r.video_id for r in one.results} == {gt.videos[0].id}


class ScriptedSegmenter:
    """Plays back a fixed list of instances per frame index (a test double)."""

    def __init__(self, script):
        self.script = script

    def init_state(self, vocabulary):
        return {}

    def set_vocabulary(self, state, vocabulary):
        pass

    def step(self, state, frame):
        return Tracks(frame.index, frame.width, frame.height, list(self.script.get(frame.index, [])))


def _inst(track, cls, label, score, mask):
    inst = Instance.from_mask(track, cls, label, score, mask)
    if inst is None:  # an empty mask: an instance with an empty crop (evaluation must skip it)
        return Instance(track, cls, label, score, (0.0, 0.0, 0.0, 0.0), np.zeros((0, 0), bool), (0, 0, 0, 0))
    return inst


def test_tracks_become_tubes(tmp_path):
    # One 4-frame video, categories a (id 1) and b (id 2). Track 5 is in frames 0-2 labelled a, a, b
    # with scores .2, .6, .4 -> one tube, category a (majority 2:1), score mean .4, null in frame 3.
    # Track 9 only in frame 3 with label b -> category 2. An empty mask is not a detection.
    h, w = 12, 16
    gt = make_gt([(1, h, w, 4)], [(1, 1, [rect(h, w, 0, 4, 0, 4)] * 4)])
    for rel in gt.videos[0].file_names:
        write_jpeg(tmp_path / rel, np.zeros((h, w, 3), np.uint8))
    m0, m1 = rect(h, w, 0, 4, 0, 4), rect(h, w, 2, 6, 3, 9)
    script = {
        0: [_inst(5, 0, "a", 0.2, m0)],
        1: [_inst(5, 0, "a", 0.6, m1)],
        2: [_inst(5, 1, "b", 0.4, m0), _inst(7, 0, "a", 0.9, np.zeros((h, w), bool))],
        3: [_inst(9, 1, "b", 0.5, m1)],
    }
    results, frames, seconds, _ = run_video(ScriptedSegmenter(script), Vocabulary(["a", "b"]), gt.videos[0],
                                            tmp_path, {"a": 1, "b": 2})
    assert frames == 4 and seconds >= 0
    assert [(r.category_id, round(r.score, 9)) for r in results] == [(1, 0.4), (2, 0.5)]
    t5, t9 = results
    assert [s is None for s in t5.segmentations] == [False, False, False, True]
    assert np.array_equal(decode_rle(t5.segmentations[1]), m1)
    assert [s is None for s in t9.segmentations] == [True, True, True, False]


def test_frame_size_mismatch_is_an_error(tmp_path):
    gt = make_gt([(1, 12, 16, 1)], [])
    write_jpeg(tmp_path / gt.videos[0].file_names[0], np.zeros((10, 16, 3), np.uint8))
    with pytest.raises(DatasetError, match="the JSON says 16x12"):
        run_online(ScriptedSegmenter({}), gt, tmp_path, Vocabulary(["a", "b"]))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "streamseg", *args], capture_output=True, text=True, timeout=60)


def test_eval_json_command(tmp_path):
    # The duplicates case of test_eval_ytvis (AP 0.7, AR1 0.4, AR100 1), through files and the CLI.
    h = w = 10
    sq = rect(h, w, 0, 4, 0, 4)
    gt = make_gt([(1, h, w, 3)], [(1, 1, [sq, sq, sq])])
    (tmp_path / "gt.json").write_text(json.dumps(dataset_to_json(gt)))
    write_results(tmp_path / "res.json", [result(1, 1, 0.9, [sq, sq, None]), result(1, 1, 0.8, [sq, sq, sq])])
    assert len(read_results(tmp_path / "res.json", load_ytvis(tmp_path / "gt.json"))) == 2
    proc = _cli("eval-json", str(tmp_path / "gt.json"), str(tmp_path / "res.json"), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["AP"] == pytest.approx(0.7) and out["AR1"] == pytest.approx(0.4) and out["AR100"] == pytest.approx(1.0)
    assert out["APs"] == pytest.approx(0.7) and out["APm"] == -1.0
    table = _cli("eval-json", str(tmp_path / "gt.json"), str(tmp_path / "res.json"))
    assert table.returncode == 0 and "(   AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.700" in table.stdout
    # Results naming a video the ground truth lacks: one-line error, exit 2.
    (tmp_path / "bad.json").write_text(json.dumps([{"video_id": 4, "category_id": 1, "score": 1, "segmentations": [None] * 3}]))
    bad = _cli("eval-json", str(tmp_path / "gt.json"), str(tmp_path / "bad.json"))
    assert bad.returncode == 2 and bad.stderr.strip() == (
        f"streamseg: error: {tmp_path / 'bad.json'}: result 0 refers to video 4, which is not in the ground truth")
    missing = _cli("eval-json", str(tmp_path / "nope.json"), str(tmp_path / "res.json"))
    assert missing.returncode == 2 and "annotation file not found" in missing.stderr


@pytest.mark.slow
def test_eval_command_runs_the_model_online(synth, tmp_path):
    # The untrained tiny model: its figures are whatever they are, but `eval` must report the
    # frames it ran and figures identical to scoring its own results file with eval-json.
    res = tmp_path / "res.json"
    proc = _cli("eval", "--config", "configs/tiny-test.yaml", "--untrained", "--data", str(synth), "--json", "--results", str(res))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["videos"] == 2 and out["frames"] == 10 and out["ms_per_frame"] > 0
    assert "backbone" in out["component_ms_per_frame"]
    again = json.loads(_cli("eval-json", str(synth / "valid.json"), str(res), "--json").stdout)
    assert again["results"] == out["results"]
    assert all(again[k] == out[k] for k in ("AP", "AP50", "AP75", "AR1", "AR10", "AR100"))
