"""`streamseg subscribe` as a real subprocess against a real Publisher."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from transport_helpers import VOCAB, make_tracks

from streamseg.transport.publisher import Publisher

ROOT = Path(__file__).resolve().parents[1]


def _spawn(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "streamseg", "subscribe", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _lines(proc: subprocess.Popen) -> "queue.Queue[str | None]":
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _masks(seq: int) -> list[np.ndarray]:
    a = np.zeros((36, 48), bool)
    a[2:10, 5:5 + seq % 7 + 1] = True
    b = np.zeros((36, 48), bool)
    b[20:36, 30:48] = True  # touches two borders
    return [a, b]


def _publish_until(pub: Publisher, stop: threading.Event, stream: str = "cam0") -> None:
    seq = 0
    while not stop.is_set():
        frame, tracks = make_tracks(_masks(seq), index=100 + seq, t_capture_ns=time.time_ns())
        pub.publish_seg(stream, seq, 1, frame, tracks, VOCAB)
        seq += 1
        stop.wait(0.02)


def test_subscribe_count_json_prints_one_parsable_line_per_seg_message():
    with Publisher("tcp://127.0.0.1:*") as pub:
        stop = threading.Event()
        thread = threading.Thread(target=_publish_until, args=(pub, stop), daemon=True)
        thread.start()
        try:
            proc = _spawn(pub.address, "--count", "3", "--json", "--timeout", "20")
            out, err = proc.communicate(timeout=60)
        finally:
            stop.set()
            thread.join(5)
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 3 and all(r["type"] == "seg" for r in records)
    seqs = [r["seq"] for r in records]
    assert seqs == list(range(seqs[0], seqs[0] + 3))
    for r in records:
        assert (r["stream"], r["epoch"], r["frame_index"]) == ("cam0", 1, 100 + r["seq"])
        assert (r["width"], r["height"], r["seq_gap"], r["epoch_changed"]) == (48, 36, 0, False)
        assert 0 <= r["age_ms"] < 60_000
        masks = _masks(r["seq"])
        assert [i["id"] for i in r["instances"]] == [10, 11]
        assert [i["label"] for i in r["instances"]] == VOCAB.names[:2]
        assert [i["area"] for i in r["instances"]] == [int(m.sum()) for m in masks]
        assert r["instances"][1]["box_xyxy"] == [30.0, 20.0, 48.0, 36.0]  # the wire's field name
        assert r["instances"][1]["mask_box"] == [30, 20, 18, 16]
        assert r["instances"][0]["score"] == 0.5


def test_subscribe_until_eos_prints_status_and_eos_lines_and_exits_zero():
    status = {"state": "ended", "fps_in": 25.0, "fps_out": 24.5, "dropped": 3, "epoch": 1,
              "latency_ms": {"segment": (10.0, 12.0)}}
    with Publisher("tcp://127.0.0.1:*") as pub:
        proc = _spawn(pub.address, "--until-eos", "--timeout", "20")  # human-readable lines
        lines = _lines(proc)
        stop = threading.Event()
        thread = threading.Thread(target=_publish_until, args=(pub, stop), daemon=True)
        thread.start()
        try:
            first = lines.get(timeout=30)  # the subscriber is connected once it prints
        finally:
            stop.set()
            thread.join(5)
        pub.publish_status("cam0", status)
        pub.publish_eos("cam0", 1, 10_000, "source ended")
        proc.wait(timeout=30)
    rest = []
    while (line := lines.get(timeout=5)) is not None:
        rest.append(line)
    assert proc.returncode == 0, proc.stderr.read()
    assert first.startswith("seg cam0 seq=") and "#10:person:0.50:" in first and "#11:car:0.51:288px" in first
    assert rest[-2].split()[:3] == ["status", "cam0", "ended"] and "dropped=3" in rest[-2]
    assert rest[-1].strip() == "eos cam0 epoch=1 seq=10000 reason=source ended"


def test_subscribe_times_out_with_one_line_error_when_nothing_arrives(free_port):
    proc = _spawn(f"tcp://127.0.0.1:{free_port}", "--timeout", "0.5", "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and out == ""
    notice, error = err.splitlines()  # what it waited for, then one error line
    assert notice == (f"streamseg subscribe: waiting for messages from tcp://127.0.0.1:{free_port} "
                      "(topics: seg/, status/, eos/; up to 0.5 s of silence; Ctrl-C to stop)")
    assert error.startswith("streamseg: error: no message from tcp://127.0.0.1:")


def test_subscribe_timeout_has_a_default():

    from streamseg.transport.commands import DEFAULT_TIMEOUT_S

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-m", "streamseg", "subscribe", "--help"], capture_output=True,
                         text=True, timeout=60, env=env)
    assert out.returncode == 0 and DEFAULT_TIMEOUT_S == 30.0
    assert "(default: 30; 0 = wait forever)" in " ".join(out.stdout.split())
