"""The Engine in-process with real sources, a real Publisher and a real Subscriber on loopback."""
import threading
import time

import av
import pytest
from engine_helpers import BrightRegionSegmenter, iou, square_frame, wait_subscribed, write_square_mp4

from streamseg.data.synthetic_scene import SYNTHETIC_CLASSES, SceneConfig, SyntheticScene
from streamseg.engine.config import EngineConfig
from streamseg.engine.ground_truth import GroundTruthSegmenter
from streamseg.engine.overlay import OverlayRecorder
from streamseg.engine.pipeline import Engine, StreamSpec
from streamseg.errors import SourceError
from streamseg.interface import Frame, Vocabulary
from streamseg.sources import SourceOptions, open_source
from streamseg.transport import Publisher, Subscriber

VOCAB = Vocabulary(names=list(SYNTHETIC_CLASSES))


@pytest.fixture
def wire():
    pub = Publisher("tcp://127.0.0.1:*", send_hwm=1000, linger_ms=500)
    sub = Subscriber(pub.address, rcvhwm=100000)
    wait_subscribed(pub, sub)
    yield pub, sub
    sub.close()
    pub.close(0)


def _drain(sub, timeout_s=5.0, eos_count=1):
    """Every message until eos_count EOS arrived: (seg by stream, eos by stream, statuses)."""
    segs, eos, statuses = {}, {}, []
    deadline = time.monotonic() + timeout_s
    while len(eos) < eos_count and time.monotonic() < deadline:
        msg = sub.recv(timeout_ms=100)
        if msg is None:
            continue
        if msg.kind == "seg":
            segs.setdefault(msg.stream, []).append(msg)
        elif msg.kind == "eos":
            eos[msg.stream] = msg
        else:
            statuses.append(msg)
    return segs, eos, statuses


def test_file_source_processes_every_frame_in_order_then_eos(wire, tmp_path):
    pub, sub = wire
    n = 40
    path = tmp_path / "square.mp4"
    write_square_mp4(path, n)
    source = open_source(str(path), SourceOptions())
    assert source.live is False
    record = tmp_path / "overlay.mp4"
    engine = Engine(BrightRegionSegmenter(delay_s=0.002), Vocabulary(names=["bright"]),
                    [StreamSpec("file", source, record_path=str(record))], publisher=pub,
                    recorder_factory=lambda spec: OverlayRecorder(spec.record_path, fps=25))
    report = engine.run()
    segs, eos, _ = _drain(sub)

    msgs = segs["file"]
    assert [m.seq for m in msgs] == list(range(n))  # nothing dropped anywhere
    assert [m.frame_index for m in msgs] == list(range(n))
    assert eos["file"].reason == "end" and eos["file"].seq == n - 1
    for m in msgs:
        x, y, side = square_frame(m.frame_index)[1]
        assert len(m.instances) == 1
        inst = m.instances[0]
        assert (inst.id, inst.label) == (1, "bright")
        expected = square_frame(m.frame_index)[0].mean(axis=2) > 128
        assert iou(inst.mask, expected) >= 0.9  # H.264 blurs the square's edge a little
        assert abs(inst.box_xyxy[0] - x) <= 2 and abs(inst.box_xyxy[1] - y) <= 2
    s = report.summaries[0]
    assert (s.frames, s.frames_in, s.dropped, s.eos_reason) == (n, n, 0, "end")
    assert report.errors == [] and report.stopped is False
    with av.open(str(record)) as container:
        assert sum(1 for _ in container.decode(video=0)) == n


class _SlowGroundTruth(GroundTruthSegmenter):
    def step(self, state, frame):
        time.sleep(0.05)
        return super().step(state, frame)


def test_live_source_drops_oldest_and_counts_it(wire):
    pub, sub = wire
    # A live scene at 200 frames/s into a 50 ms segmenter: most frames must be dropped, none queued.
    source = open_source("synthetic://?fps=200&width=64&height=48&instances=2", SourceOptions())
    assert source.live is True
    engine = Engine(_SlowGroundTruth(), VOCAB, [StreamSpec("0", source)], publisher=pub,
                    max_frames=10)
    report = engine.run()
    segs, eos, _ = _drain(sub)
    msgs = segs["0"]
    assert [m.seq for m in msgs] == list(range(10))  # seq counts published frames: contiguous
    indices = [m.frame_index for m in msgs]
    assert indices == sorted(set(indices))
    dropped_before_last = indices[-1] + 1 - len(msgs)  # frame numbers skipped by inference
    s = report.summaries[0]
    assert dropped_before_last > 0
    assert s.dropped >= dropped_before_last  # every skipped frame was counted as dropped
    assert s.frames_in >= s.frames + s.dropped  # the reader kept reading at its own pace
    assert eos["0"].reason == "stopped" and eos["0"].seq == 9


class _FailingSource:
    """Test double: 3 frames of a synthetic scene, then the device fails (SourceError)."""

    live = False  # every frame is processed (a live source may drop one under load: racy counts)
    state = "connected"
    epoch = 0
    fps = 30.0
    uri = "failing://"

    def __init__(self):
        self.scene = SyntheticScene(SceneConfig(width=64, height=48, instances=2))

    def frames(self):
        for i in range(3):
            image, truth = self.scene.render(i)
            yield Frame(image=image, index=i, pts=None, t_capture_ns=time.time_ns(), truth=truth)
            time.sleep(0.01)
        raise SourceError("camera unplugged")

    def close(self):
        pass


def test_source_error_ends_only_its_stream(wire, tmp_path, capsys):
    """The error reaches the caller (callback + report); the library itself prints nothing."""
    pub, sub = wire
    good = open_source("synthetic://?fps=0&frames=30&width=64&height=48&instances=2&seed=1", SourceOptions())
    record = tmp_path / "bad.mp4"
    engine = Engine(GroundTruthSegmenter(), VOCAB,
                    [StreamSpec("bad", _FailingSource(), record_path=str(record)), StreamSpec("good", good)],
                    publisher=pub, on_stream_error=lambda sid, msg: failed.append((sid, msg)),
                    recorder_factory=lambda spec: OverlayRecorder(spec.record_path, fps=30))
    failed: list[tuple[str, str]] = []
    report = engine.run()
    segs, eos, _ = _drain(sub, eos_count=2)
    assert eos["bad"].reason == "error" and eos["bad"].seq == 2
    assert eos["good"].reason == "end" and eos["good"].seq == 29
    assert [m.frame_index for m in segs["good"]] == list(range(30))
    assert [m.seq for m in segs["bad"]] == [0, 1, 2]
    assert report.errors == ["stream bad: camera unplugged"]
    assert failed == [("bad", "camera unplugged")]
    assert capsys.readouterr().err == ""
    with av.open(str(record)) as container:  # what the failed stream produced is kept, playable
        assert sum(1 for _ in container.decode(video=0)) == 3


def test_a_truncated_file_ends_its_stream_normally_with_a_warning(wire, tmp_path):
    from sources_helpers import write_numbered_video

    pub, sub = wire
    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    write_numbered_video(str(whole), 40, fps=10, faststart=True)
    data = whole.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    warned = []
    engine = Engine(BrightRegionSegmenter(), Vocabulary(names=["bright"]),
                    [StreamSpec("cut", open_source(str(cut), SourceOptions()))], publisher=pub,
                    on_stream_warning=lambda stream, message: warned.append((stream, message)))
    report = engine.run()
    segs, eos, _ = _drain(sub)
    n = len(segs["cut"])
    assert 0 < n < 40 and [m.seq for m in segs["cut"]] == list(range(n))  # every decoded frame went out
    assert eos["cut"].reason == "end" and eos["cut"].seq == n - 1
    assert report.errors == []
    assert len(warned) == 1 and warned[0][0] == "cut"
    assert warned[0][1].startswith(f"{cut}: file ended early: {n} frames decoded of 40 expected")
    assert report.warnings == [f"stream cut: {warned[0][1]}"]


def test_streams_are_served_round_robin_and_status_carries_stage_latencies(wire):
    pub, sub = wire
    a = open_source("synthetic://?fps=0&frames=25&width=64&height=48&seed=1", SourceOptions())
    b = open_source("synthetic://?fps=0&frames=25&width=64&height=48&seed=2", SourceOptions())
    engine = Engine(GroundTruthSegmenter(), VOCAB, [StreamSpec("a", a), StreamSpec("b", b)], publisher=pub,
                    config=EngineConfig(status_hz=1000.0))
    engine.run()
    order, eos, statuses = [], {}, []
    deadline = time.monotonic() + 5
    while len(eos) < 2 and time.monotonic() < deadline:
        msg = sub.recv(timeout_ms=100)
        if msg is None:
            continue
        if msg.kind == "seg":
            order.append(msg.stream)
        elif msg.kind == "eos":
            eos[msg.stream] = msg
        else:
            statuses.append(msg)
    assert order.count("a") == order.count("b") == 25
    # the loop takes turns: neither stream is starved while the other has frames
    first_half = order[:25]
    assert first_half.count("a") >= 8 and first_half.count("b") >= 8, order
    assert {s.stream for s in statuses} == {"a", "b"}
    last = [s for s in statuses if s.stream == "a"][-1]
    assert last.state == "ended"
    for stage in ("decode", "slot_wait", "segment", "encode", "publish", "capture_to_publish",
                  "overhead", "overhead_cpu"):
        assert 0 <= last.latency_ms[stage]["p50"] <= last.latency_ms[stage]["p95"], stage


def test_stop_from_another_thread_sends_eos_on_every_stream(wire):
    pub, sub = wire
    sources = [open_source(f"synthetic://?fps=30&width=64&height=48&seed={i}", SourceOptions()) for i in range(2)]
    engine = Engine(GroundTruthSegmenter(), VOCAB, [StreamSpec(str(i), s) for i, s in enumerate(sources)],
                    publisher=pub)
    threading.Timer(0.5, engine.stop).start()
    report = engine.run()
    segs, eos, _ = _drain(sub, eos_count=2)
    assert report.stopped
    assert {k: v.reason for k, v in eos.items()} == {"0": "stopped", "1": "stopped"}
    for k in ("0", "1"):
        assert segs[k] and eos[k].seq == segs[k][-1].seq


def test_realtime_file_behaves_like_a_live_source(wire, tmp_path):
    pub, sub = wire
    path = tmp_path / "square.mp4"
    write_square_mp4(path, 25, fps=25)  # one second of video
    source = open_source(str(path), SourceOptions(realtime=True))
    assert source.live is True  # paced: the reader never waits for inference
    engine = Engine(BrightRegionSegmenter(delay_s=0.1), Vocabulary(names=["bright"]),
                    [StreamSpec("0", source)], publisher=pub)
    report = engine.run()
    segs, eos, _ = _drain(sub)
    s = report.summaries[0]
    assert s.frames_in == 25 and eos["0"].reason == "end"
    assert s.frames < 25 and s.dropped > 0
    assert s.frames + s.dropped == 25  # every frame read was either processed or counted as dropped
    indices = [m.frame_index for m in segs["0"]]
    assert indices == sorted(set(indices)) and len(indices) == s.frames
