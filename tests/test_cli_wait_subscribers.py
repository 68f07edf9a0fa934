"""`streamseg run --wait-subscribers`: a subscriber already waiting gets a file's every frame, frame 0 too.

Without the wait, ZeroMQ's slow joiner loses the first messages: the subscriber's subscription reaches
the freshly bound publisher only after the engine has started sending.
"""
import time

from cli_helpers import one_line_error
from engine_helpers import run_cli, start_cli, write_square_mp4

from streamseg.transport import Subscriber

FRAMES = 12
TINY = ("--config", "tiny-test", "--untrained", "--set", "vocabulary.names=a,b")


def _until_eos(sub: Subscriber, timeout_s: float = 120.0):
    segs, eos = [], None
    deadline = time.monotonic() + timeout_s
    while eos is None and time.monotonic() < deadline:
        msg = sub.recv(timeout_ms=200)
        if msg is not None and msg.kind == "seg":
            segs.append(msg)
        elif msg is not None and msg.kind == "eos":
            eos = msg
    return segs, eos


def test_a_waiting_subscriber_receives_every_frame_of_a_file_from_seq_0(free_port, tmp_path):
    video = tmp_path / "square.mp4"
    write_square_mp4(video, FRAMES)
    address = f"tcp://127.0.0.1:{free_port}"
    with Subscriber(address, rcvhwm=10_000) as sub:  # connected (retrying) before the engine binds
        proc = start_cli("run", *TINY, "--source", str(video), "--publish", address, "--stream-id", "cam",
                         "--set", "engine.send_hwm=1000", "--wait-subscribers", "1", "--wait-timeout", "60")
        try:
            segs, eos = _until_eos(sub)
        finally:
            out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "waiting for 1 subscriber(s)" in err
    assert eos is not None and eos.reason == "end" and eos.seq == FRAMES - 1
    assert [m.seq for m in segs] == list(range(FRAMES))  # seq 0 first: nothing lost to the slow joiner
    assert [m.frame_index for m in segs] == list(range(FRAMES))
    assert {m.stream for m in segs} == {"cam"}


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
