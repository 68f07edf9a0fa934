"""The control socket over real ZeroMQ sockets against a running engine (ground-truth double)."""
from __future__ import annotations

import threading
import time

import msgpack
import pytest
import zmq
from engine_helpers import run_cli, start_cli, wait_subscribed

from streamseg.config import Config
from streamseg.control.client import Controller
from streamseg.control.protocol import ControlError
from streamseg.control.server import ControlServer
from streamseg.engine.build import build_engine, vocabulary_maker
from streamseg.transport import Publisher, Subscriber

LIVE = "synthetic://?fps=60&frames=100000&width=64&height=48&instances=2&seed={}"


@pytest.fixture
def running():
    cfg = Config()
    cfg.engine.status_hz = 20.0
    pub = Publisher("tcp://127.0.0.1:*", send_hwm=10000, linger_ms=0)
    sub = Subscriber(pub.address, rcvhwm=100000)
    wait_subscribed(pub, sub)
    engine = build_engine(cfg, [LIVE.format(1)], stream_ids=["a"], segmenter="ground-truth", publisher=pub)
    server = ControlServer(engine, "tcp://127.0.0.1:*", cfg, vocabulary_maker(cfg, engine.segmenter)).start()
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    ctl = Controller(server.address, timeout_s=5)
    yield engine, ctl, sub, server
    ctl.close()
    engine.stop()
    thread.join(5)
    server.close()
    sub.close()
    pub.close(0)


def _next(sub, predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = sub.recv(timeout_ms=100)
        if msg is not None and predicate(msg):
            return msg
    raise AssertionError("no matching message")


def test_vocabulary_swap_shows_in_the_next_seg_message(running):
    _, ctl, sub, _ = running
    before = _next(sub, lambda m: m.kind == "seg")
    old = ctl.get_vocabulary()
    assert old["vocab_id"] == before.vocab_id
    reply = ctl.set_vocabulary(names=["cat", "dog", "cow"])
    assert reply["streams"] == ["a"] and reply["names"] == ["cat", "dog", "cow"]
    assert reply["vocab_id"] != old["vocab_id"]
    assert ctl.get_vocabulary(stream="a")["vocab_id"] == reply["vocab_id"]
    # every seg message published after the reply carries the new id
    seg = _next(sub, lambda m: m.kind == "seg" and m.vocab_id == reply["vocab_id"])
    later = _next(sub, lambda m: m.kind == "seg" and m.seq > seg.seq)
    assert later.vocab_id == reply["vocab_id"]
    names = ["cat", "dog", "cow"]  # the double names classes from the stream's vocabulary
    assert all(i.label == names[i.class_id] for i in later.instances if i.class_id < 3)


def test_status_config_tracks(running):
    _, ctl, sub, _ = running
    _next(sub, lambda m: m.kind == "seg" and len(m.instances) > 0)
    status = ctl.get_status()
    assert [s["stream"] for s in status] == ["a"] and status[0]["frames_out"] > 0
    assert ctl.get_config()["engine"]["status_hz"] == 20.0
    tracks = ctl.list_tracks()
    assert set(tracks) == {"a"}
    assert all(isinstance(t["id"], int) and len(t["box_xyxy"]) == 4 for t in tracks["a"])
    with pytest.raises(ControlError, match="no running stream 'zz'"):
        ctl.get_status(stream="zz")


def test_pause_resume(running):
    _, ctl, sub, _ = running
    _next(sub, lambda m: m.kind == "seg")
    assert ctl.pause(stream="a")["streams"] == ["a"]
    _next(sub, lambda m: m.kind == "status" and m.state == "paused")
    # while paused: status only; a seg message published after the first paused status is none
    seen_seg = 0
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        msg = sub.recv(timeout_ms=50)
        if msg is not None and msg.kind == "seg":
            seen_seg += 1
    assert seen_seg == 0
    assert ctl.get_status()[0]["state"] == "paused"
    ctl.resume()
    _next(sub, lambda m: m.kind == "seg")


def test_add_and_remove_source_while_running(running):
    _, ctl, sub, _ = running
    assert ctl.add_source(LIVE.format(2), stream="b") == "b"
    _next(sub, lambda m: m.kind == "seg" and m.stream == "b")
    with pytest.raises(ControlError, match="already runs"):
        ctl.add_source(LIVE.format(3), stream="b")
    with pytest.raises(ControlError, match="unknown source scheme"):
        ctl.add_source("nope://x", stream="c")
    ctl.remove_source("b")
    eos = _next(sub, lambda m: m.kind == "eos" and m.stream == "b")
    assert eos.reason == "stopped"
    _next(sub, lambda m: m.kind == "seg" and m.stream == "a")  # the other stream goes on
    assert [s["stream"] for s in ctl.get_status()] == ["a"]


def test_target_ops_say_not_supported_until_the_segmenter_has_them(running):
    _, ctl, _, _ = running
    for op, fields in [("add_target", {"stream": "a", "box": [1, 2, 3, 4]}),
                       ("remove_target", {"stream": "a", "track_id": 1}), ("list_targets", {"stream": "a"})]:
        reply = ctl.request(op, **fields)
        assert reply["ok"] is False and "not supported" in reply["error"]


def test_malformed_requests_get_one_line_errors(running):
    _, ctl, _, server = running
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.address)
    cases = [
        (b"\xc1garbage", "not msgpack"),
        (msgpack.packb([1, 2]), "must be a msgpack map"),
        (msgpack.packb({"v": 2, "op": "get_status"}), "unsupported control version 2"),
        (msgpack.packb({"v": 1, "op": "explode"}), "unknown op 'explode'"),
        (msgpack.packb({"v": 1, "op": "pause", "stream": 3}), "field 'stream' must be str"),
        (msgpack.packb({"v": 1, "op": "remove_source"}), "field 'stream' is required"),
        (msgpack.packb({"v": 1, "op": "get_status", "bogus": 1}), "unknown field 'bogus'"),
        (msgpack.packb({"v": 1, "op": "set_vocabulary"}), "exactly one of names or file"),
    ]
    try:
        for payload, expected in cases:
            sock.send_multipart([b"", payload])
            assert sock.poll(5000)
            reply = msgpack.unpackb(sock.recv_multipart()[-1])
            assert reply["ok"] is False and expected in reply["error"], (expected, reply)
            assert "\n" not in reply["error"]
    finally:
        sock.close()
    assert ctl.get_status()[0]["stream"] == "a"  # still serving


def test_a_thousand_malformed_requests_do_not_stop_or_slow_the_engine(running):
    _, ctl, sub, server = running
    _next(sub, lambda m: m.kind == "seg")
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.address)
    first = ctl.get_status()[0]
    replies = 0
    try:
        for batch in range(10):  # 1,000 in a row, in bursts of 100 spread over >= 0.5 s of frames
            for i in range(100):
                sock.send_multipart([b"", b"\x92\x01" if i % 2 else msgpack.packb({"v": 1, "op": i})])
            deadline = time.monotonic() + 20
            while replies < 100 * (batch + 1) and time.monotonic() < deadline:
                if sock.poll(100):
                    assert msgpack.unpackb(sock.recv_multipart()[-1])["ok"] is False
                    replies += 1
            time.sleep(0.05)
    finally:
        sock.close()
    assert replies == 1000
    last = ctl.get_status()[0]
    frames_in = last["frames_in"] - first["frames_in"]
    frames_out = last["frames_out"] - first["frames_out"]
    # the loop kept pace with the 60 fps live source all through the flood: every frame read was
    # segmented and published, but for the one or two in flight when the status was taken
    assert frames_in >= 20 and frames_out >= frames_in - 3, (frames_in, frames_out)
    assert last["state"] == "connected"


def test_cli_run_control_and_control_command(free_port):
    ctl_addr = f"tcp://127.0.0.1:{free_port}"
    proc = start_cli("run", "--source", LIVE.format(1), "--segmenter", "ground-truth", "--publish",
                     "tcp://127.0.0.1:*", "--control", ctl_addr, "--duration", "20", "--quiet")
    try:
        deadline = time.monotonic() + 15
        while True:
            out = run_cli("control", ctl_addr, "get_status", "--timeout", "1")
            if out.returncode == 0 or time.monotonic() > deadline:
                break
        assert out.returncode == 0, out.stderr
        assert '"stream": "0"' in out.stdout
        out = run_cli("control", ctl_addr, "set_vocabulary", "names=cat,dog")
        assert out.returncode == 0 and '"names": ["cat", "dog"]' in out.stdout
        out = run_cli("control", ctl_addr, "explode")
        assert out.returncode == 1 and out.stderr.strip().startswith("streamseg: error: unknown op 'explode'")
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


def test_curve_admits_the_client_key_and_nobody_else(tmp_path):
    from streamseg.transport.curve import CurveServer, generate_keys

    keys, other = tmp_path / "keys", tmp_path / "other"
    generate_keys(keys)
    generate_keys(other)  # a valid key pair the server does not know
    out = run_cli("keys", "generate", str(keys))
    assert out.returncode == 2 and "refusing to overwrite" in out.stderr
    cfg = Config()
    curve = CurveServer(keys)
    pub = Publisher("tcp://127.0.0.1:*", send_hwm=1000, linger_ms=0, curve=curve)
    good = Subscriber(pub.address, curve=keys)
    plain = Subscriber(pub.address)
    stranger = Subscriber(pub.address, curve=other)
    engine = build_engine(cfg, [LIVE.format(1)], segmenter="ground-truth", publisher=pub)
    server = ControlServer(engine, "tcp://127.0.0.1:*", cfg, curve=curve).start()
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    try:
        assert _next(good, lambda m: m.kind == "seg").stream == "0"
        with Controller(server.address, curve=keys, timeout_s=5) as ctl:
            assert ctl.get_status()[0]["stream"] == "0"
        for sub in (plain, stranger):
            assert sub.recv(timeout_ms=700) is None
        with Controller(server.address, timeout_s=0.7) as ctl, pytest.raises(TimeoutError):
            ctl.get_status()
        with Controller(server.address, curve=other, timeout_s=0.7) as ctl, pytest.raises(TimeoutError):
            ctl.get_status()
    finally:
        engine.stop()
        thread.join(5)
        server.close()
        for sub in (good, plain, stranger):
            sub.close()
        pub.close(0)
        curve.close()


def test_proxy_joins_two_engines_and_two_subscribers():
    from streamseg.transport.proxy import Proxy

    proxy = Proxy("tcp://127.0.0.1:*", "tcp://127.0.0.1:*").start()
    subs = [Subscriber(proxy.xpub_address) for _ in range(2)]
    engines, threads = [], []
    try:
        for name in ("e1", "e2"):
            cfg = Config()
            cfg.engine.publish = ">" + proxy.xsub_address
            cfg.engine.linger_ms = 0
            engine = build_engine(cfg, [LIVE.format(len(engines) + 1)], stream_ids=[name], segmenter="ground-truth")
            engines.append(engine)
            threads.append(threading.Thread(target=engine.run, daemon=True))
            threads[-1].start()
        for sub in subs:
            seen: set[str] = set()
            deadline = time.monotonic() + 10
            while seen != {"e1", "e2"} and time.monotonic() < deadline:
                msg = sub.recv(timeout_ms=100)
                if msg is not None and msg.kind == "seg":
                    seen.add(msg.stream)
            assert seen == {"e1", "e2"}
        assert proxy.forwarded > 0
    finally:
        for engine, thread in zip(engines, threads):
            engine.stop()
            thread.join(5)
            engine.close(0)
        for sub in subs:
            sub.close()
        proxy.close()


def test_metrics_are_served_and_parse(free_port):
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    proc = start_cli("run", "--source", LIVE.format(1), "--stream-id", "cam", "--segmenter", "ground-truth",
                     "--publish", "tcp://127.0.0.1:*", "--metrics", str(free_port), "--duration", "20", "--quiet")
    try:
        deadline = time.monotonic() + 15
        text = None
        while time.monotonic() < deadline:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{free_port}/metrics", timeout=1).read().decode()
                if 'streamseg_frames_out_total{stream="cam"}' in text and "stage=\"publish\"" in text:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert text is not None
        families = {f.name: f for f in text_string_to_metric_families(text)}
        out = [s for s in families["streamseg_frames_out"].samples if s.labels == {"stream": "cam"}]
        assert out and out[0].value > 0
        assert "streamseg_frames_in" in families and "streamseg_reconnects" in families
        hist = families["streamseg_stage_latency_ms"]
        counts = [s for s in hist.samples if s.name.endswith("_count") and s.labels["stage"] == "publish"]
        assert counts and counts[0].value > 0
        health = urllib.request.urlopen(f"http://127.0.0.1:{free_port}/healthz", timeout=2)
        assert health.status == 200 and health.read() == b"ok\n"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow  # ~8 s here: loads MiniLM and runs the tiny model
def test_set_vocabulary_by_names_embeds_them_with_the_model_text_encoder(tmp_path):
    """The tiny random model (MiniLM text space): names sent over control are embedded with MiniLM."""
    from streamseg.config import load_config

    cfg = load_config("configs/tiny-test.yaml", ["vocabulary.names=[person]", "vocabulary.cache=false"])
    pub = Publisher("tcp://127.0.0.1:*", send_hwm=1000, linger_ms=0)
    sub = Subscriber(pub.address)
    wait_subscribed(pub, sub)
    engine = build_engine(cfg, ["synthetic://?fps=30&frames=100000&width=96&height=64&seed=1"], publisher=pub)
    server = ControlServer(engine, "tcp://127.0.0.1:*", cfg, vocabulary_maker(cfg, engine.segmenter)).start()
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    try:
        with Controller(server.address, timeout_s=60) as ctl:
            first = _next(sub, lambda m: m.kind == "seg", timeout_s=30)
            reply = ctl.set_vocabulary(names=["car", "dog"])
            assert ctl.get_vocabulary()["encoder_id"] == "minilm:all-MiniLM-L6-v2"
            assert reply["vocab_id"] != first.vocab_id
            _next(sub, lambda m: m.kind == "seg" and m.vocab_id == reply["vocab_id"], timeout_s=30)
            bad = ctl.request("set_vocabulary", names=["a", "a"])
            assert bad["ok"] is False and "unique" in bad["error"]
    finally:
        engine.stop()
        thread.join(10)
        server.close()
        sub.close()
        pub.close(0)


def test_target_ops_over_the_bus_with_the_real_model():
    """add/list/remove_target against OnlineVIS (tiny config, untrained weights): the target is
    published under its fixed ID with "target": true, and a malformed mask is refused."""
    import numpy as np
    from pycocotools import mask as mask_utils
    from segmenter_helpers import random_vocabulary, tiny_config

    cfg = tiny_config()
    pub = Publisher("tcp://127.0.0.1:*", send_hwm=10000, linger_ms=0)
    sub = Subscriber(pub.address, rcvhwm=100000)
    wait_subscribed(pub, sub)
    engine = build_engine(cfg, ["synthetic://?fps=30&frames=100000&width=96&height=64&instances=2&seed=3"],
                          stream_ids=["a"], segmenter="model", vocabulary=random_vocabulary(),
                          publisher=pub, device="cpu")
    server = ControlServer(engine, "tcp://127.0.0.1:*", cfg, vocabulary_maker(cfg, engine.segmenter)).start()
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    ctl = Controller(server.address, timeout_s=10)
    try:
        _next(sub, lambda m: m.kind == "seg", timeout_s=20)
        mask = np.zeros((64, 96), dtype=np.uint8)
        mask[10:30, 20:50] = 1
        rle = mask_utils.encode(np.asfortranarray(mask))
        reply = ctl.request("add_target", stream="a", mask={"size": [64, 96], "counts": rle["counts"]}, name="cup")
        assert reply["ok"] is True, reply
        tid = reply["track_id"]
        listed = ctl.request("list_targets", stream="a")
        assert listed["ok"] and [(t["track_id"], t["name"]) for t in listed["targets"]] == [(tid, "cup")]
        bad = ctl.request("add_target", stream="a", mask={"size": [64, 96], "counts": b"0l"})
        assert bad["ok"] is False and "not a valid RLE" in bad["error"]
        assert ctl.request("remove_target", stream="a", track_id=tid)["ok"] is True
        assert ctl.request("list_targets", stream="a")["targets"] == []
    finally:
        ctl.close()
        engine.stop()
        thread.join(10)
        server.close()
        sub.close()
        pub.close(0)
