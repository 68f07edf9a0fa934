"""`streamseg run` as a real subprocess on the live synthetic scene, read by a real Subscriber."""
import signal
import time

import av
import numpy as np
import pytest
from engine_helpers import iou, start_cli

from streamseg.data.synthetic_scene import SYNTHETIC_CLASSES, SceneConfig, SyntheticScene
from streamseg.transport import Subscriber

SCENE = dict(seed=3, width=320, height=180, instances=5)
URI = "synthetic://?seed={seed}&fps=30&width={width}&height={height}&instances={instances}".format(**SCENE)


def _collect(sub: Subscriber, until_eos: bool = True, max_seg: int | None = None, timeout_s: float = 15.0):
    segs, eos, statuses = [], None, []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = sub.recv(timeout_ms=200)
        if msg is None:
            continue
        if msg.kind == "seg":
            segs.append(msg)
            if max_seg is not None and len(segs) >= max_seg:
                break
        elif msg.kind == "status":
            statuses.append(msg)
        elif msg.kind == "eos":
            eos = msg
            if until_eos:
                break
    return segs, eos, statuses


def _finish(proc, timeout: float = 10.0) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_demo_masks_match_scene_ground_truth_and_ids_are_stable(free_port, tmp_path):
    address = f"tcp://127.0.0.1:{free_port}"
    out_mp4 = tmp_path / "demo.mp4"
    with Subscriber(address) as sub:
        proc = start_cli("run", "--source", URI, "--segmenter", "ground-truth", "--publish", address,
                         "--max-frames", "60", "--record", str(out_mp4))
        try:
            segs, eos, statuses = _collect(sub)
        finally:
            code, out, err = _finish(proc)
    assert code == 0, err
    assert eos is not None and eos.stream == "0" and eos.reason == "stopped"
    assert len(segs) >= 20  # the subscriber may join a few frames late, never later than that
    assert eos.seq == segs[-1].seq == 59  # --max-frames 60: seq 0..59
    seqs = [m.seq for m in segs]
    assert seqs == list(range(seqs[0], seqs[0] + len(segs)))  # no gap on the wire
    indices = [m.frame_index for m in segs]
    assert indices == sorted(set(indices))

    scene = SyntheticScene(SceneConfig(**SCENE))
    classes_by_id: dict[int, int] = {}
    frames_seen: dict[int, int] = {}
    checked = 0
    for msg in segs:
        assert (msg.width, msg.height) == (SCENE["width"], SCENE["height"])
        assert msg.vocab_names == list(SYNTHETIC_CLASSES)
        _, truth = scene.render(msg.frame_index)
        truth_by_id = {t.instance_id: t for t in truth if t.mask.any()}
        assert {i.id for i in msg.instances} == set(truth_by_id)
        for inst in msg.instances:
            t = truth_by_id[inst.id]
            assert inst.class_id == t.class_id and inst.label == SYNTHETIC_CLASSES[t.class_id]
            assert iou(inst.mask, t.mask) >= 0.99
            assert inst.area == int(t.mask.sum())
            # one id = one object: its class never changes from frame to frame
            assert classes_by_id.setdefault(inst.id, inst.class_id) == inst.class_id
            frames_seen[inst.id] = frames_seen.get(inst.id, 0) + 1
            checked += 1
    assert checked >= 3 * len(segs)  # several instances per frame really were compared
    assert max(frames_seen.values()) == len(segs)  # at least one id persists through every frame

    assert statuses and statuses[-1].state == "ended"
    assert "60 frames" in out  # the summary
    with av.open(str(out_mp4)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 60
    assert decoded[0].shape == (180, 320, 3)


def _recorded_run_signalled(free_port, out_mp4, before: int, send) -> tuple[int, float, object, str]:
    """`run` publishing and recording the scene; after ``before`` seg messages, ``send(proc)``
    signals it. Returns its exit code, the seconds from the signals to its exit, its EOS, stderr."""
    address = f"tcp://127.0.0.1:{free_port}"
    with Subscriber(address) as sub:
        proc = start_cli("run", "--source", URI, "--segmenter", "ground-truth", "--publish", address,
                         "--record", str(out_mp4), "--quiet")
        try:
            segs, _, _ = _collect(sub, until_eos=False, max_seg=before)
            assert len(segs) == before
            t_signal = time.monotonic()
            send(proc)
            code = proc.wait(timeout=10)
            exit_s = time.monotonic() - t_signal
            _, eos, _ = _collect(sub, timeout_s=3.0)
        finally:
            if proc.poll() is None:
                proc.kill()
            _, err = proc.communicate(timeout=5)
    return code, exit_s, eos, err


def _decoded_frames(path) -> int:
    with av.open(str(path)) as container:  # finalised: the trailer is there, every frame decodes
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_sends_eos_finalises_mp4_and_exits_quickly(free_port, tmp_path, sig):
    out_mp4 = tmp_path / "rec.mp4"
    code, exit_s, eos, err = _recorded_run_signalled(free_port, out_mp4, 15, lambda proc: proc.send_signal(sig))
    assert code == 0, err
    assert exit_s < 2.0, f"exit took {exit_s:.2f} s after the signal"
    assert eos is not None and eos.reason == "stopped"
    frames = _decoded_frames(out_mp4)
    assert frames == eos.seq + 1  # one recorded frame per published frame
    assert frames >= 15


def test_two_streams_named_share_one_engine(free_port, tmp_path):
    address = f"tcp://127.0.0.1:{free_port}"
    with Subscriber(address) as sub:
        proc = start_cli("run", "--source", URI, "--source", URI.replace("seed=3", "seed=4"),
                         "--stream-id", "left", "--stream-id", "right", "--segmenter", "ground-truth",
                         "--publish", address, "--max-frames", "20", "--quiet",
                         "--record", str(tmp_path / "out.mp4"))
        try:
            segs, eos_by_stream = {"left": [], "right": []}, {}
            deadline = time.monotonic() + 15
            while len(eos_by_stream) < 2 and time.monotonic() < deadline:
                msg = sub.recv(timeout_ms=200)
                if msg is None:
                    continue
                if msg.kind == "seg":
                    segs[msg.stream].append(msg)
                elif msg.kind == "eos":
                    eos_by_stream[msg.stream] = msg
        finally:
            code, _, err = _finish(proc)
    assert code == 0, err
    assert set(eos_by_stream) == {"left", "right"}
    assert all(e.seq == 19 for e in eos_by_stream.values())
    for name, seed in (("left", 3), ("right", 4)):
        assert segs[name], name
        scene = SyntheticScene(SceneConfig(**{**SCENE, "seed": seed}))
        msg = segs[name][-1]
        _, truth = scene.render(msg.frame_index)  # each stream carries its own scene
        assert {i.id for i in msg.instances} == {t.instance_id for t in truth if t.mask.any()}
        assert np.all([iou(i.mask, {t.instance_id: t.mask for t in truth}[i.id]) >= 0.99 for i in msg.instances])
        with av.open(str(tmp_path / f"out-{name}.mp4")) as container:  # one recording per stream
            assert sum(1 for _ in container.decode(video=0)) == 20


def test_live_status_line_on_a_terminal(free_port):
    import os
    import pty
    import subprocess

    from engine_helpers import ROOT, streamseg_cmd, subprocess_env

    master, slave = pty.openpty()  # stderr is a TTY: the one-line status is redrawn with \r
    proc = subprocess.Popen(streamseg_cmd("run", "--source", URI, "--segmenter", "ground-truth",
                                          "--publish", f"tcp://127.0.0.1:{free_port}", "--max-frames", "75",
                                          "--set", "engine.status_hz=5"),
                            cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=15)
    os.close(master)
    tty = b"".join(chunks).decode()
    assert proc.returncode == 0
    lines = [part for part in tty.split("\r") if part.startswith("[0]")]
    assert len(lines) >= 3, tty
    assert all(" fps  lat p50 " in line and " drop " in line for line in lines)
    assert "75 frames" in proc.stdout.read().decode()


def test_a_storm_of_signals_still_sends_eos_and_finalises_the_mp4(free_port, tmp_path):
    """Ctrl-C held down: the first signal stops the engine, those during the bounded shutdown
    are ignored, so nothing already produced is lost. (A signal after the teardown, once the
    default handler is back, may still end the process by SIGINT: 130 to a shell either way.)"""
    def storm(proc) -> None:
        for _ in range(400):  # every 5 ms until it exits (at most 2 s)
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGINT)
            time.sleep(0.005)

    out_mp4 = tmp_path / "rec.mp4"
    code, _, eos, err = _recorded_run_signalled(free_port, out_mp4, 10, storm)
    assert code in (0, 130, -signal.SIGINT), err
    assert eos is not None and eos.reason == "stopped"
    frames = _decoded_frames(out_mp4)
    assert frames == eos.seq + 1 and frames >= 10
