"""A real RTSP server (GstRtspServer, 127.0.0.1) dies and comes back while the engine runs."""
import re
import select
import subprocess
import sys
import threading
import time

import pytest
from engine_helpers import ROOT, BrightRegionSegmenter, subprocess_env, wait_subscribed

from streamseg.engine.config import EngineConfig
from streamseg.engine.pipeline import Engine, StreamSpec
from streamseg.interface import Vocabulary
from streamseg.sources import SourceOptions, open_source
from streamseg.transport import Publisher, Subscriber

pytest.importorskip("gi")
from sources_helpers import RtspTestServer  # noqa: E402

pytestmark = pytest.mark.gst


def _recv_until(sub, predicate, timeout_s, sink):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = sub.recv(timeout_ms=100)
        if msg is None:
            continue
        sink.append(msg)
        if predicate(msg):
            return msg
    raise AssertionError(f"condition not met within {timeout_s} s; last: {sink[-1:]}")


def test_engine_reconnects_after_server_restart_and_messages_resume(free_port):
    server = RtspTestServer(free_port, width=160, height=120, fps=30, pattern="ball")
    server.start()
    pub = Publisher("tcp://127.0.0.1:*", send_hwm=1000, linger_ms=500)
    sub = Subscriber(pub.address, rcvhwm=100000)
    follower = None
    engine_thread = None
    engine = None
    try:
        wait_subscribed(pub, sub)
        follower = subprocess.Popen(
            [sys.executable, str(ROOT / "examples/follow_class.py"), pub.address, "--label", "bright"],
            cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        source = open_source(server.url, SourceOptions(open_timeout_s=10, read_timeout_s=2.0,
                                                       reconnect_initial_s=0.1, reconnect_max_s=0.5))
        engine = Engine(BrightRegionSegmenter(), Vocabulary(names=["bright"]), [StreamSpec("cam", source)],
                        publisher=pub, config=EngineConfig(status_hz=20.0))
        engine_thread = threading.Thread(target=engine.run, daemon=True)
        engine_thread.start()

        messages = []
        seg = lambda m: m.kind == "seg"  # noqa: E731
        for _ in range(10):
            _recv_until(sub, seg, 20, messages)
        before = [m for m in messages if m.kind == "seg"]
        assert all(m.epoch == 0 for m in before)
        assert any(i.label == "bright" for m in before for i in m.instances)  # the ball was segmented
        # The follower must see epoch 0 before the outage (a loaded machine starts Python slowly, and
        # the resume is ~0.1 s: it could otherwise join after the reconnect and see no epoch change).
        ready, _, _ = select.select([follower.stdout], [], [], 30)
        assert ready, "the follower printed nothing within 30 s"
        first_line = follower.stdout.readline()

        server.stop()
        time.sleep(1.0)
        server.start()
        t_back = time.monotonic()
        resumed = _recv_until(sub, lambda m: m.kind == "seg" and m.epoch >= 1, 20, messages)
        resume_s = time.monotonic() - t_back
        print(f"\nRTSP: messages resumed {resume_s:.2f} s after the server returned (target 2 s)")
        for _ in range(5):
            _recv_until(sub, seg, 10, messages)
        engine.stop()
        engine_thread.join(5)
        assert not engine_thread.is_alive()
        eos = _recv_until(sub, lambda m: m.kind == "eos", 5, messages)
        follow_out, follow_err = follower.communicate(timeout=10)
    finally:
        if engine is not None:
            engine.stop()
        if engine_thread is not None:
            engine_thread.join(5)
        if follower is not None and follower.poll() is None:
            follower.kill()
        sub.close()
        pub.close(0)
        server.stop()

    segs = [m for m in messages if m.kind == "seg"]
    seqs = [m.seq for m in segs]
    assert seqs == list(range(seqs[0], seqs[0] + len(segs))), seqs  # seq never resets, nothing lost
    assert resumed.epoch_changed and resumed.epoch >= 1
    epochs = [m.epoch for m in segs]
    assert epochs == sorted(epochs)  # the epoch only ever grows
    frame_indices = [m.frame_index for m in segs]
    assert frame_indices == sorted(frame_indices)  # the source's frame counter continues across reconnects
    states = {m.state for m in messages if m.kind == "status"}
    assert "reconnecting" in states and "connected" in states, states
    assert eos.reason == "stopped" and eos.seq == segs[-1].seq, (eos, segs[-1].seq)

    # the robot-side example noticed the reconnect and stopped at EOS
    assert follower.returncode == 0, follow_err
    lines = (first_line + follow_out).strip().splitlines()
    assert any(re.match(r"epoch [1-9]\d*: source reconnected, resetting target$", line) for line in lines), follow_out
    assert lines[-1] == "eos stream=cam reason=stopped: stopping"
    assert any(" follow id=1" in line for line in lines)
