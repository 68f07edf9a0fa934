"""Each example in examples/ run as a real subprocess against a real `streamseg run` demo engine."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from engine_helpers import ROOT, iou, start_cli, subprocess_env
from pycocotools import mask as coco_mask

from streamseg.data.synthetic_scene import SYNTHETIC_CLASSES, SceneConfig, SyntheticScene

SCENE = dict(seed=5, width=320, height=180, instances=5)
URI = "synthetic://?seed={seed}&fps=30&width={width}&height={height}&instances={instances}".format(**SCENE)
FRAMES = 90


@pytest.fixture(scope="module")
def demo_outputs(tmp_path_factory):
    """One engine run (90 frames at 30 fps) with all three examples listening to it."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    out = tmp_path_factory.mktemp("examples") / "tracks.jsonl"
    examples = {
        "print": [str(ROOT / "examples/print_tracks.py"), address],
        "record": [str(ROOT / "examples/record_rle.py"), address, str(out), "--count", "20"],
        "follow": [str(ROOT / "examples/follow_class.py"), address, "--label", "square"],
    }
    procs = {name: subprocess.Popen([sys.executable, *args], cwd=ROOT, env=subprocess_env(),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, args in examples.items()}
    engine = start_cli("run", "--source", URI, "--segmenter", "ground-truth", "--publish", address,
                       "--max-frames", str(FRAMES), "--quiet")
    results = {}
    try:
        for name, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=30)
            results[name] = (proc.returncode, stdout, stderr)
        engine_out = engine.communicate(timeout=30)
    finally:
        for proc in [*procs.values(), engine]:
            if proc.poll() is None:
                proc.kill()
    assert engine.returncode == 0, engine_out[1]
    results["jsonl"] = out
    return results


def _scene():
    return SyntheticScene(SceneConfig(**SCENE))


def test_print_tracks_prints_the_scene_and_stops_at_eos(demo_outputs):
    code, out, err = demo_outputs["print"]
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[-1] == f"eos stream=0 reason=stopped last_seq={FRAMES - 1}"
    scene = _scene()
    frames = 0
    current = None
    for line in lines[:-1]:
        m = re.match(r"frame stream=0 seq=(\d+) index=(\d+) epoch=0 instances=(\d+) age_ms=", line)
        if m:
            _, truth = scene.render(int(m.group(2)))
            current = {t.instance_id: t for t in truth}
            assert int(m.group(3)) == len(current)
            frames += 1
            continue
        m = re.match(r"  id=(\d+) label=(\w+) score=1.00 box=([\d,]+) area=(\d+)$", line)
        assert m, line
        t = current[int(m.group(1))]
        assert m.group(2) == SYNTHETIC_CLASSES[t.class_id]
        assert int(m.group(4)) == int(t.mask.sum())
    assert frames >= 30


def test_record_rle_writes_masks_that_decode_to_the_ground_truth(demo_outputs):
    code, out, err = demo_outputs["record"]
    assert code == 0, err
    records = [json.loads(line) for line in demo_outputs["jsonl"].read_text().splitlines()]
    assert out.strip() == f"wrote {len(records)} masks from 20 frames to {demo_outputs['jsonl']}"
    scene = _scene()
    by_frame: dict[int, list] = {}
    for r in records:
        by_frame.setdefault(r["frame_index"], []).append(r)
    assert len(by_frame) == 20
    for index, recs in by_frame.items():
        _, truth = scene.render(index)
        truth_by_id = {t.instance_id: t for t in truth}
        assert sorted(r["track_id"] for r in recs) == sorted(truth_by_id)
        for r in recs:
            assert r["segmentation"]["size"] == [SCENE["height"], SCENE["width"]]
            mask = coco_mask.decode({"size": r["segmentation"]["size"],
                                     "counts": r["segmentation"]["counts"].encode()}).astype(bool)
            assert iou(mask, truth_by_id[r["track_id"]].mask) >= 0.99
            assert r["label"] == SYNTHETIC_CLASSES[truth_by_id[r["track_id"]].class_id]


def test_follow_class_tracks_the_largest_instance_and_stops_at_eos(demo_outputs):
    code, out, err = demo_outputs["follow"]
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[-1] == "eos stream=0 reason=stopped: stopping"
    scene = _scene()
    followed = lost = 0
    for line in lines[:-1]:
        m = re.match(r"frame (\d+): follow id=(\d+)(?: \(new target\))? centroid=([\d.]+),([\d.]+) "
                     r"box=[\d,]+ area=(\d+) age_ms=[\d.]+$", line)
        if m is None:
            assert re.match(r"frame \d+: square lost$", line), line
            _, truth = scene.render(int(line.split()[1].rstrip(":")))
            assert not [t for t in truth if SYNTHETIC_CLASSES[t.class_id] == "square"]
            lost += 1
            continue
        _, truth = scene.render(int(m.group(1)))
        squares = [t for t in truth if SYNTHETIC_CLASSES[t.class_id] == "square"]
        best = max(squares, key=lambda t: t.mask.sum())
        assert int(m.group(2)) == best.instance_id
        ys, xs = np.nonzero(best.mask)
        assert abs(float(m.group(3)) - xs.mean()) < 0.06 and abs(float(m.group(4)) - ys.mean()) < 0.06
        assert int(m.group(5)) == int(best.mask.sum())
        followed += 1
    assert followed + lost >= 10
    assert followed > 0
