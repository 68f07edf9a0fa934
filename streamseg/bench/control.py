"""``streamseg bench control``: control round trip under full load, vocabulary swap latency, and
CURVE's cost per published message at 720p. Prints one JSON object of figures.

Full load: a non-live synthetic source (fps=0) read as fast as the engine can segment it with the
ground-truth double, so the inference loop never idles; the control requests wait for a gap
between frames like any real request.
"""
from __future__ import annotations

import json
import tempfile
import threading
import time
from typing import Any, Sequence

import numpy as np


def _pct(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values)
    return {"p50": round(float(np.percentile(arr, 50)), 3), "p95": round(float(np.percentile(arr, 95)), 3)}


def bench_control(requests: int = 300, swaps: int = 10, width: int = 640, height: int = 360) -> dict:
    from streamseg.config import Config
    from streamseg.control.client import Controller
    from streamseg.control.server import ControlServer
    from streamseg.engine.build import build_engine, vocabulary_maker
    from streamseg.transport import Publisher, Subscriber
    from streamseg.transport.messages import SegMessage

    cfg = Config()
    pub = Publisher("tcp://127.0.0.1:*", send_hwm=100000, linger_ms=0)
    sub = Subscriber(pub.address, topics=["seg/"], rcvhwm=100000)
    time.sleep(0.3)
    uri = f"synthetic://?fps=0&frames=10000000&width={width}&height={height}&instances=5&seed=1"
    engine = build_engine(cfg, [uri], segmenter="ground-truth", publisher=pub)
    server = ControlServer(engine, "tcp://127.0.0.1:*", cfg, vocabulary_maker(cfg, engine.segmenter)).start()
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    ctl = Controller(server.address, timeout_s=10)
    try:
        while sub.recv(timeout_ms=1000) is None:
            pass
        rtt = []
        for _ in range(requests):
            t0 = time.perf_counter()
            ctl.call("get_status")
            rtt.append((time.perf_counter() - t0) * 1e3)
        swap_ms, swap_frames = [], []
        for k in range(swaps):
            while sub.recv(timeout_ms=0) is not None:
                pass
            t0 = time.perf_counter()
            reply = ctl.set_vocabulary(names=[f"class{k}", "other"])
            first_seq = None
            frames_between = 0
            while True:
                msg = sub.recv(timeout_ms=5000)
                if msg is None:
                    break
                if not isinstance(msg, SegMessage):
                    continue
                if first_seq is None:
                    first_seq = msg.seq
                if msg.vocab_id == reply["vocab_id"]:
                    swap_ms.append((time.perf_counter() - t0) * 1e3)
                    swap_frames.append(msg.seq - first_seq)
                    break
                frames_between += 1
        status = ctl.get_status()[0]
    finally:
        ctl.close()
        engine.stop()
        thread.join(10)
        server.close()
        sub.close()
        pub.close(0)
    return {"load": f"ground-truth double, synthetic {width}x{height}, 5 instances, fps=0 (full load)",
            "engine_fps": status["fps_out"], "control_rtt_ms": _pct(rtt), "requests": requests,
            "vocab_swap_ms": _pct(swap_ms), "vocab_swap_frames_after_reply_seen": _pct(swap_frames),
            "swaps": len(swap_ms)}


def bench_curve(messages: int = 300, width: int = 1280, height: int = 720, instances: int = 10) -> dict:
    """Publish one 720p seg message repeatedly, plain and CURVE: ms per message to publish and to arrive."""
    from streamseg.data.synthetic_scene import (
        SYNTHETIC_CLASSES,
        SceneConfig,
        SyntheticScene,
    )
    from streamseg.engine.ground_truth import GroundTruthSegmenter
    from streamseg.interface import Frame, Vocabulary
    from streamseg.transport import Publisher, Subscriber
    from streamseg.transport.curve import CurveServer, generate_keys

    scene = SyntheticScene(SceneConfig(width=width, height=height, instances=instances))
    image, truth = scene.render(3)
    frame = Frame(image=image, index=0, pts=0.0, t_capture_ns=time.time_ns(), truth=truth)
    vocab = Vocabulary(names=list(SYNTHETIC_CLASSES))
    seg = GroundTruthSegmenter()
    tracks = seg.step(seg.init_state(vocab), frame)
    out: dict[str, Any] = {"instances": len(tracks.instances), "width": width, "height": height}
    with tempfile.TemporaryDirectory() as keys:
        generate_keys(keys)
        curve = CurveServer(keys)
        for name, server, client in (("plain", None, None), ("curve", curve, keys)):
            pub = Publisher("tcp://127.0.0.1:*", send_hwm=100000, linger_ms=0, curve=server)
            sub = Subscriber(pub.address, rcvhwm=100000, curve=client)
            while True:  # wait for the subscription (and the CURVE handshake)
                pub.publish_status("probe", {"state": "connected", "fps_in": 0, "fps_out": 0, "dropped": 0,
                                             "latency_ms": {}, "epoch": 0})
                if sub.recv_parts(timeout_ms=50) is not None:
                    break
            while sub.recv_parts(timeout_ms=50) is not None:
                pass
            pub_ms, e2e_ms = [], []
            for i in range(messages):
                t0 = time.perf_counter()
                pub.publish_seg("0", i, 0, frame, tracks, vocab)
                t1 = time.perf_counter()
                sub.recv_parts(timeout_ms=5000)
                t2 = time.perf_counter()
                pub_ms.append((t1 - t0) * 1e3)
                e2e_ms.append((t2 - t0) * 1e3)
            out[name] = {"publish_ms": _pct(pub_ms), "publish_to_receive_ms": _pct(e2e_ms),
                         "bytes": pub.last_bytes}
            sub.close()
            pub.close(0)
        curve.close()
    return out


def main(requests: int = 300, swaps: int = 10, messages: int = 300) -> int:
    print(json.dumps({"control": bench_control(requests, swaps), "curve_720p": bench_curve(messages)}, indent=1))
    return 0
