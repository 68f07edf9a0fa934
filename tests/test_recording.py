"""--record: files that survive SIGKILL, frames timed by capture time (live) or pts (files), and
recording failures reported before the run or at once on the status topic. Real subprocesses of the
CLI, real files read back with PyAV, real ZeroMQ subscribers."""
import os
import signal
import subprocess
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from cli_helpers import one_line_error
from engine_helpers import BrightRegionSegmenter, run_cli, start_cli, wait_subscribed

from streamseg.data.synthetic_scene import SYNTHETIC_CLASSES
from streamseg.engine.ground_truth import GroundTruthSegmenter
from streamseg.engine.overlay import OverlayRecorder
from streamseg.engine.pipeline import Engine, StreamSpec
from streamseg.engine.recording import FrameClock
from streamseg.interface import Frame, Vocabulary
from streamseg.sources import SourceOptions, open_source
from streamseg.transport import Publisher, Subscriber

FPS = 15


def _live_uri(fps: int = FPS) -> str:
    return f"synthetic://?seed=2&fps={fps}&width=160&height=96&instances=3"


def _decoded_times(path) -> list[float]:
    """Presentation times (s) of every frame that decodes; a torn last fragment ends the list."""
    times: list[float] = []
    with av.open(str(path)) as container:
        try:
            for frame in container.decode(video=0):
                times.append(float(frame.time))
        except av.error.FFmpegError:
            pass
    return times


def _collect(sub: Subscriber, segs: list, statuses: list, until, timeout_s: float):
    """Receive into segs / statuses until ``until(msg)`` is true; returns that message or None."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = sub.recv(timeout_ms=200)
        if msg is None:
            continue
        if msg.kind == "seg":
            segs.append(msg)
        elif msg.kind == "status":
            statuses.append(msg)
        if until(msg):
            return msg
    return None


def _assert_timed_by_capture(times: list[float], segs: list, tolerance_s: float = 0.002) -> int:
    """Recorded frame k is seg message seq k: its time since the first received one equals the
    capture-time difference (to the file's time base). Returns how many frames were compared."""
    first = next(m for m in segs if m.seq < len(times))
    compared = 0
    for m in segs:
        if m.seq < len(times):
            recorded = times[m.seq] - times[first.seq]
            captured = (m.t_capture_ns - first.t_capture_ns) / 1e9
            assert abs(recorded - captured) <= tolerance_s, (m.seq, recorded, captured)
            compared += 1
    return compared


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_sigkill_leaves_a_playable_file_with_all_but_the_last_second(free_port, tmp_path, suffix):
    address = f"tcp://127.0.0.1:{free_port}"
    out = tmp_path / f"rec{suffix}"
    segs: list = []
    with Subscriber(address) as sub:
        proc = start_cli("run", "--source", _live_uri(), "--segmenter", "ground-truth", "--publish", address,
                         "--record", str(out), "--quiet")
        try:
            _collect(sub, segs, [], lambda m: len(segs) >= 4 * FPS, timeout_s=30)
            assert len(segs) >= 4 * FPS  # 4 s of live frames published (and so queued for the recorder)
            deadline = time.monotonic() + 10
            while (not out.exists() or out.stat().st_size == 0) and time.monotonic() < deadline:
                time.sleep(0.05)  # bounded poll: the file has grown
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            _collect(sub, segs, [], lambda m: False, timeout_s=0.5)  # what left before the kill
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == -signal.SIGKILL
    produced = segs[-1].seq + 1
    times = _decoded_times(out)
    # All but the fragment being built (~1 s) and the recorder's queue (8 frames): within 2 s.
    assert produced - 2 * FPS <= len(times) <= produced, (len(times), produced)
    assert times == sorted(times) and times[0] == 0.0
    assert _assert_timed_by_capture(times, segs) >= len(times) - 2 * FPS


class _SlowGroundTruth(GroundTruthSegmenter):
    def step(self, state, frame):
        time.sleep(0.04)
        return super().step(state, frame)


def test_live_recording_with_drops_plays_as_long_as_the_run(tmp_path, free_port):
    """A 100 fps source into a 40 ms segmenter drops most frames; the recording still lasts as
    long as the capture span of the frames it holds (a frame counter at 100 fps would not)."""
    pub = Publisher(f"tcp://127.0.0.1:{free_port}", send_hwm=1000)
    sub = Subscriber(pub.address)
    try:
        wait_subscribed(pub, sub)
        source = open_source("synthetic://?fps=100&width=96&height=64&instances=2", SourceOptions())
        out = tmp_path / "live.mp4"
        engine = Engine(_SlowGroundTruth(), Vocabulary(names=list(SYNTHETIC_CLASSES)),
                        [StreamSpec("0", source, record_path=str(out))], publisher=pub, max_frames=40,
                        recorder_factory=lambda spec: OverlayRecorder(spec.record_path, fps=100, live=True))
        report = engine.run()
        segs: list = []
        _collect(sub, segs, [], lambda m: m.kind == "eos", timeout_s=5)
    finally:
        sub.close()
        pub.close(0)
    assert report.errors == [] and report.summaries[0].record_frames == 40
    assert report.summaries[0].dropped > 0
    times = _decoded_times(out)
    assert len(times) == 40
    assert [m.seq for m in segs] == list(range(40))
    assert _assert_timed_by_capture(times, segs) == 40
    capture_span = (segs[-1].t_capture_ns - segs[0].t_capture_ns) / 1e9
    assert abs((times[-1] - times[0]) - capture_span) <= 0.3 * capture_span
    assert 39 / 100 < 0.5 * capture_span  # the old frame-counter timing would have played it > 2x fast


def _write_irregular_mp4(path, pts_ms: list[int]) -> None:
    """A real H.264 file whose frames come at uneven times (variable frame rate)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = 160, 120
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        for i, t in enumerate(pts_ms):
            image = np.zeros((120, 160, 3), dtype=np.uint8)
            image[40:72, 8 + 3 * i:40 + 3 * i] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_file_processed_frame_by_frame_keeps_its_pts(tmp_path, free_port):
    pts_ms = [0, 40, 80, 200, 240, 600, 640, 680, 1500, 1540]
    src = tmp_path / "vfr.mp4"
    _write_irregular_mp4(src, pts_ms)
    pub = Publisher(f"tcp://127.0.0.1:{free_port}")
    try:
        source = open_source(str(src), SourceOptions())
        assert source.live is False
        out = tmp_path / "overlay.mkv"
        engine = Engine(BrightRegionSegmenter(), Vocabulary(names=["bright"]),
                        [StreamSpec("0", source, record_path=str(out))], publisher=pub,
                        recorder_factory=lambda spec: OverlayRecorder(spec.record_path, fps=25))
        report = engine.run()
    finally:
        pub.close(0)
    assert report.errors == [] and report.summaries[0].frames == len(pts_ms)
    times = _decoded_times(out)
    assert [round(t * 1000) for t in times] == pts_ms
    with av.open(str(out)) as container:  # the overlay really is on the frames: the square is tinted
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    square = first[44:68, 12:36].reshape(-1, 3).mean(axis=0)
    assert square.max() - square.min() > 40  # no longer white: coloured by the mask


def test_frame_clock_live_pts_and_missing_pts():
    def frame(pts, t_ns):
        return Frame(image=np.zeros((2, 2, 3), np.uint8), index=0, pts=pts, t_capture_ns=t_ns)

    live = FrameClock(live=True, fps=30)
    assert [live.seconds(frame(None, t)) for t in (5_000_000_000, 5_250_000_000, 6_000_000_000)] == [0.0, 0.25, 1.0]
    files = FrameClock(live=False, fps=10)
    got = [files.seconds(frame(p, 0)) for p in (2.0, 2.5, None, 0.0, 0.1)]
    # pts relative to the first; a missing pts is one nominal frame later; a pts going backwards
    # (a looped file) continues one frame after the previous one, keeping its own spacing after.
    assert got == pytest.approx([0.0, 0.5, 0.6, 0.7, 0.8])


@pytest.mark.parametrize("target, extra, needle", [
    ("{tmp}", [], "is a folder"),
    ("{tmp}/missing/out.mp4", [], "does not exist"),
    ("/proc/streamseg-test.mp4", [], "cannot create the file"),
    ("{tmp}/out.avi", [], "must end in .mp4"),
    ("{tmp}/out.mp4", ["--set", "engine.record_codec=aac"], "encodes audio, not video"),
    ("{tmp}/out.mp4", ["--set", "engine.record_codec=nosuch"], "no such encoder"),
    ("{tmp}/out.mp4", ["--set", "engine.record_codec=mpeg4"], "does not open"),
])
def test_bad_record_target_is_refused_before_the_run(tmp_path, target, extra, needle):
    path = target.format(tmp=tmp_path)
    result = run_cli("run", "--source", _live_uri(), "--segmenter", "ground-truth", "--record", path,
                     "--publish", "tcp://127.0.0.1:*", "--max-frames", "5", *extra)
    line = one_line_error(result, needle)
    assert path in line or "record_codec" in line
    assert sorted(os.listdir(tmp_path)) == []  # nothing was created


def _finish(proc, timeout_s: float = 15.0) -> tuple[str, str]:
    """The run's stdout and stderr once it exits by itself (killed if it does not, in time)."""
    try:
        return proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate(timeout=5)


def _full_disk_target(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this machine")
    out = tmp_path / "full.mp4"
    out.symlink_to("/dev/full")  # every write fails with ENOSPC: a disk that fills mid-run
    return out


def test_recording_that_fails_mid_run_ends_the_stream_with_the_error_on_the_status_topic(tmp_path, free_port):
    """The recording goes to a pipe whose reader goes away after a few seconds: the next write fails
    (EPIPE), the error is on the status topic at once and the stream ends (record_on_error=stop)."""
    out = tmp_path / "pipe.mp4"
    os.mkfifo(out)
    reader = os.open(out, os.O_RDONLY | os.O_NONBLOCK)  # the engine's open then finds a reader
    address = f"tcp://127.0.0.1:{free_port}"
    segs: list = []
    statuses: list = []
    received = 0
    eos = None

    def drain_pipe(_msg) -> bool:
        nonlocal received
        try:
            received += len(os.read(reader, 1 << 16)) if reader >= 0 else 0
        except BlockingIOError:
            pass
        return len(segs) >= 2 * 30 and len(statuses) >= 1 and received > 0

    with Subscriber(address) as sub:
        proc = start_cli("run", "--source", _live_uri(30), "--segmenter", "ground-truth", "--publish", address,
                         "--record", str(out), "--max-frames", "900", "--quiet")
        try:
            _collect(sub, segs, statuses, drain_pipe, timeout_s=30)
            assert received > 0 and not any(s.error for s in statuses)  # recording, healthy
            os.close(reader)
            reader = -1
            eos = _collect(sub, segs, statuses, lambda m: m.kind == "eos", timeout_s=30)
        finally:
            if reader >= 0:
                os.close(reader)
            _, err = _finish(proc)
    assert proc.returncode == 2, err
    assert eos is not None and eos.reason == "error" and eos.seq < 899  # stopped at the failure
    failed = [s for s in statuses if s.error]
    assert failed and "Broken pipe" in failed[0].error and str(out) in failed[0].error
    assert failed[0].frames_out is not None and failed[0].frames_out <= eos.seq + 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("streamseg: error: stream 0: recording to ")
    assert "Broken pipe" in lines[0] and "Traceback" not in err


def test_record_on_error_continue_keeps_publishing_and_says_so_in_every_status(tmp_path, free_port):
    out = _full_disk_target(tmp_path)
    address = f"tcp://127.0.0.1:{free_port}"
    segs: list = []
    statuses: list = []
    with Subscriber(address) as sub:
        proc = start_cli("run", "--source", _live_uri(30), "--segmenter", "ground-truth", "--publish", address,
                         "--record", str(out), "--max-frames", "60", "--set", "engine.record_on_error=continue",
                         "--set", "engine.status_hz=10")
        try:
            eos = _collect(sub, segs, statuses, lambda m: m.kind == "eos", timeout_s=30)
        finally:
            out_text, err = _finish(proc)
    assert proc.returncode == 2, err  # the run went on, but it did not do all it was asked
    assert eos is not None and eos.reason == "stopped" and eos.seq == 59  # every frame published
    first_failed = next(i for i, s in enumerate(statuses) if s.error)
    assert all("No space left on device" in s.error for s in statuses[first_failed:])
    assert all(s.state == "connected" for s in statuses[first_failed:-1])
    lines = [line for line in err.splitlines() if line.startswith("streamseg: error:")]
    assert len(lines) == 1 and "goes on unrecorded" in lines[0]
    assert "recorded 0 frames" in out_text and "error: recording to" in out_text  # the summary
