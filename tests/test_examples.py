"""Each example in examples/ run as a real subprocess against a real `streamseg run` demo engine: with
the ground-truth segmenter (exact values), and as its docstring documents it (the shipped model)."""
import ast
import json
import re
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

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


# --- Each example's docstring commands, run as written -------------------------------------------
# The commands are parsed out of the docstring, so the test follows the docs. Two substitutions, so
# that tests never collide on a fixed port: the documented tcp://127.0.0.1:5555 becomes a free port
# (and the engine command gets `--publish` that address); `streamseg`/`python` are this interpreter.
# They run in a temporary folder holding a link to examples/, so files they write land there. Slow:
# the fast run covers the same programs above with the ground-truth segmenter.


def docstring_commands(example: Path) -> list[tuple[list[str], bool]]:
    """(argv, in the background) for each `streamseg …`/`python …` line of the example's docstring."""
    doc = ast.get_docstring(ast.parse(example.read_text()), clean=False) or ""
    commands = []
    for line in doc.splitlines():
        if not re.match(r"    (streamseg|python) ", line):  # the indented command lines only
            continue
        words = shlex.split(line, comments=True)
        background = words[-1] == "&"
        commands.append((words[:-1] if background else words, background))
    return commands


def _as_run(words: list[str], address: str) -> list[str]:
    words = [w.replace("tcp://127.0.0.1:5555", address) for w in words]
    if words[0] == "streamseg":
        words = [sys.executable, "-m", "streamseg", *words[1:]]
        if words[3] == "run" and "--publish" not in words:
            words += ["--publish", address]
        return words
    return [sys.executable, *words[1:]]


def _wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float) -> None:
    """Read ``proc``'s stderr until a line starts with ``prefix`` (kept as ``proc.stderr_head``)."""
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if line.startswith(prefix):
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    proc.stderr_head = "".join(lines)  # type: ignore[attr-defined]
    assert found.is_set(), f"no '{prefix}' line within {timeout} s: {proc.stderr_head}"


def run_docstring(example: str, tmp_path, free_port: int, timeout: float = 120) -> tuple[str, list[str]]:
    """Run the example's documented commands; returns (foreground stdout, background stdouts)."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    commands = docstring_commands(ROOT / "examples" / example)
    assert [bg for _, bg in commands] == [True, False], commands  # an engine, then the example
    address = f"tcp://127.0.0.1:{free_port}"
    background = [subprocess.Popen(_as_run(words, address), cwd=tmp_path, env=subprocess_env(), text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                  for words, bg in commands if bg]
    try:
        for engine in background:  # as a user would: the example starts once the engine publishes
            _wait_for_line(engine, "streamseg: publishing", timeout)
        (fg,) = [words for words, bg in commands if not bg]
        proc = subprocess.run(_as_run(fg, address), cwd=tmp_path, env=subprocess_env(), capture_output=True,
                              text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stderr
        outputs = []
        for engine, words in zip(background, [words for words, bg in commands if bg]):
            if "--max-frames" not in words and engine.poll() is None:  # else it ends by itself
                engine.send_signal(signal.SIGINT)  # what Ctrl-C on the documented `&` job does
            out, err = engine.communicate(timeout=60)
            err = engine.stderr_head + err  # type: ignore[attr-defined]
            assert engine.returncode == 0, err
            outputs.append(out)
    finally:
        for engine in background:
            if engine.poll() is None:
                engine.kill()
                engine.wait(10)
    return proc.stdout, outputs


def _check_instance_line(line: str, width: int = 640, height: int = 360) -> str:
    m = re.match(r"  id=(\d+) label=(\w+) score=([\d.]+) box=(\d+),(\d+),(\d+),(\d+) area=(\d+)$", line)
    assert m, line
    x0, y0, x1, y1, area = (int(v) for v in m.groups()[3:])
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height and 0 < area <= (x1 - x0) * (y1 - y0), line
    assert 0.0 < float(m.group(3)) <= 1.0 and m.group(2) in SYNTHETIC_CLASSES, line
    return m.group(2)


@pytest.mark.slow  # the shipped model in a real engine: ~20-40 s each on 2 busy cores
def test_print_tracks_docstring_commands_work(tmp_path, free_port):
    out, (engine_out,) = run_docstring("print_tracks.py", tmp_path, free_port)
    lines = out.splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith("frame ")]
    assert len(frames) == 30
    seqs, labels = [], set()
    for start, end in zip(frames, [*frames[1:], len(lines)]):
        m = re.match(r"frame stream=0 seq=(\d+) index=(\d+) epoch=0 instances=(\d+) age_ms=[\d.]+$", lines[start])
        assert m, lines[start]
        seqs.append(int(m.group(1)))
        assert int(m.group(3)) == end - start - 1  # one indented line per instance
        labels |= {_check_instance_line(line) for line in lines[start + 1:end]}
    assert seqs == sorted(set(seqs)) and labels  # in order, and the shipped model found something
    assert re.search(r"^stream 0 \(synthetic://\): \d+ frames in ", engine_out, re.M), engine_out


@pytest.mark.slow  # the shipped model in a real engine: ~20-40 s each on 2 busy cores
def test_record_rle_docstring_commands_work(tmp_path, free_port):
    out, _ = run_docstring("record_rle.py", tmp_path, free_port)
    records = [json.loads(line) for line in (tmp_path / "tracks.jsonl").read_text().splitlines()]
    assert out.strip() == f"wrote {len(records)} masks from 30 frames to tracks.jsonl"
    assert records and len({r["seq"] for r in records}) <= 30
    for r in records:
        assert r["segmentation"]["size"] == [360, 640] and r["label"] in SYNTHETIC_CLASSES
        rle = {"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode()}
        x, y, w, h = coco_mask.toBbox(rle)
        x0, y0, x1, y1 = r["box_xyxy"]
        assert coco_mask.area(rle) > 0 and x0 <= x and y0 <= y and x + w <= x1 and y + h <= y1, r["box_xyxy"]


@pytest.mark.slow  # the shipped model in a real engine: ~20-40 s each on 2 busy cores
def test_follow_class_docstring_commands_work(tmp_path, free_port):
    out, _ = run_docstring("follow_class.py", tmp_path, free_port)
    lines = out.strip().splitlines()
    assert lines[-1] == "eos stream=0 reason=stopped: stopping"
    followed = 0
    for line in lines[:-1]:
        m = re.match(r"frame \d+: follow id=\d+(?: \(new target\))? centroid=([\d.]+),([\d.]+) "
                     r"box=(\d+),(\d+),(\d+),(\d+) area=(\d+) age_ms=[\d.]+$", line)
        if m is None:
            assert re.match(r"frame \d+: disk lost$", line), line
            continue
        cx, cy = float(m.group(1)), float(m.group(2))
        x0, y0, x1, y1, area = (int(v) for v in m.groups()[2:])
        assert x0 <= cx <= x1 and y0 <= cy <= y1 and area > 0, line
        followed += 1
    assert followed > 0
