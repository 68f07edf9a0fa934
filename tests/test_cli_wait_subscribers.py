"""`streamseg run --wait-subscribers`: a subscriber already waiting gets a file's every frame, frame 0 too
(and, in the same run to spare a model start, a truncated file's warning line).

Without the wait, ZeroMQ's slow joiner loses the first messages: the subscriber's subscription reaches
the freshly bound publisher only after the engine has started sending.
"""
import time

from cli_helpers import one_line_error
from engine_helpers import run_cli, start_cli, write_square_mp4
from sources_helpers import write_numbered_video

from streamseg.transport import Subscriber

FRAMES = 12
TINY = ("--config", "tiny-test", "--untrained", "--set", "vocabulary.names=a,b")


def _until_eos(sub: Subscriber, streams: int, timeout_s: float = 120.0):
    segs, eos = [], {}
    deadline = time.monotonic() + timeout_s
    while len(eos) < streams and time.monotonic() < deadline:
        msg = sub.recv(timeout_ms=200)
        if msg is not None and msg.kind == "seg":
            segs.append(msg)
        elif msg is not None and msg.kind == "eos":
            eos[msg.stream] = msg
    return segs, eos


def test_a_waiting_subscriber_gets_every_frame_from_seq_0_and_a_cut_file_ends_with_a_warning(free_port, tmp_path):
    """One engine run, two file streams: the whole file reaches the waiting subscriber from frame 0;
    the truncated one publishes what decodes, ends with EOS "end" and a warning line naming it."""
    video, whole, cut = tmp_path / "square.mp4", tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    write_square_mp4(video, FRAMES)
    write_numbered_video(str(whole), 30, fps=10, faststart=True)
    cut.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    address = f"tcp://127.0.0.1:{free_port}"
    with Subscriber(address, rcvhwm=10_000) as sub:  # connected (retrying) before the engine binds
        proc = start_cli("run", *TINY, "--source", str(video), "--stream-id", "cam", "--source", str(cut),
                         "--stream-id", "cut", "--publish", address, "--set", "engine.send_hwm=1000",
                         "--wait-subscribers", "1", "--wait-timeout", "60")
        try:
            segs, eos = _until_eos(sub, streams=2)
        finally:
            out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "waiting for 1 subscriber(s)" in err
    cam = [m for m in segs if m.stream == "cam"]
    assert eos["cam"].reason == "end" and eos["cam"].seq == FRAMES - 1
    assert [m.seq for m in cam] == list(range(FRAMES))  # seq 0 first: nothing lost to the slow joiner
    assert [m.frame_index for m in cam] == list(range(FRAMES))
    n_cut = sum(1 for m in segs if m.stream == "cut")
    assert 0 < n_cut < 30 and eos["cut"].reason == "end" and eos["cut"].seq == n_cut - 1
    warnings = [line for line in err.splitlines() if line.startswith("streamseg: warning: stream cut:")]
    prefix = f"streamseg: warning: stream cut: {cut}: file ended early: {n_cut} frames decoded of 30 expected"
    assert len(warnings) == 1 and warnings[0].startswith(prefix), err  # (+ the decoder's error, when it raised)


def test_no_subscriber_within_the_timeout_is_a_one_line_error(free_port):
    with Subscriber(f"tcp://127.0.0.1:{free_port}", topics=["status/"]):  # subscribed, but not to seg
        result = run_cli("run", "--source", "synthetic://?width=64&height=48", "--segmenter", "ground-truth",
                         "--publish", f"tcp://127.0.0.1:{free_port}", "--quiet",
                         "--wait-subscribers", "1", "--wait-timeout", "1", timeout=60)
    one_line_error(result, "--wait-subscribers 1: 0 subscriber(s) after 1s", "no frame was processed")


def test_bad_wait_flags_are_refused():
    for flags, needle in ((("--wait-subscribers", "-1"), "--wait-subscribers must be >= 0"),
                          (("--wait-subscribers", "1", "--wait-timeout", "0"), "--wait-timeout must be > 0"),
                          (("--wait-subscribers", "2", "--publish", ">tcp://127.0.0.1:9"), "through a proxy")):
        one_line_error(run_cli("run", "--source", "synthetic://", *flags), needle)
