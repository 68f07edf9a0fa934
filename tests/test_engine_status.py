"""Stage timings, rates, status messages and the GroundTruthSegmenter test double."""
import numpy as np

from streamseg.data.synthetic_scene import SYNTHETIC_CLASSES, SceneConfig, SyntheticScene
from streamseg.engine.ground_truth import GroundTruthSegmenter
from streamseg.engine.overlay import TextRenderer, draw_overlay, track_colour
from streamseg.engine.status import StreamStatus, terminal_line
from streamseg.engine.timings import RateMeter, StageTimings
from streamseg.interface import Frame, Instance, Tracks, Vocabulary
from streamseg.transport import decode, encode_status


def test_percentiles_recent_window_and_whole_run():
    t = StageTimings(window=10, reservoir=1000)
    for v in range(1, 101):  # 1..100 ms
        t.add("segment", float(v))
    whole = t.percentiles(recent=False)["segment"]
    assert whole == {"p50": 50.5, "p95": 95.05}
    recent = t.percentiles(recent=True)["segment"]  # the last 10: 91..100
    assert recent == {"p50": 95.5, "p95": 99.55}
    assert t.count("segment") == 100


def test_reservoir_keeps_memory_bounded():
    t = StageTimings(window=5, reservoir=50)
    for v in range(10000):
        t.add("encode", float(v))
    p = t.percentiles(recent=False)["encode"]
    assert len(t._all["encode"]) == 50
    assert 2000 < p["p50"] < 8000  # a uniform sample of the whole run, not its first 50 values


def test_rate_meter():
    r = RateMeter(window_s=2.0)
    for i in range(61):
        r.tick(i / 30.0)  # 30 per second for 2 s
    assert abs(r.rate(2.0) - 30.0) < 0.01
    assert r.rate(10.0) == 0.0  # nothing in the window any more


def test_status_message_round_trips_through_protocol_v1():
    s = StreamStatus(stream="cam", source="rtsp://x", state="reconnecting", epoch=2, fps_in=29.97,
                     fps_out=12.5, frames_in=100, frames_out=40, dropped=60, send_dropped=3,
                     latency_ms={"segment": {"p50": 70.0, "p95": 90.0}})
    msg = decode(encode_status("cam", s.to_message()))
    assert (msg.state, msg.epoch, msg.dropped, msg.wire_dropped) == ("reconnecting", 2, 60, 3)
    assert msg.fps_in == 29.97 and msg.latency_ms == {"segment": {"p50": 70.0, "p95": 90.0}}
    failed = StreamStatus(**{**s.__dict__, "state": "error", "error": "boom"})
    assert decode(encode_status("cam", failed.to_message())).state == "ended"
    line = terminal_line([s])
    assert line.startswith("[cam] reco  12.5 fps  lat p50") and line.endswith("drop 60  0 inst")


def test_ground_truth_segmenter_replays_the_scene():
    scene = SyntheticScene(SceneConfig(seed=2, width=160, height=90, instances=4))
    image, truth = scene.render(40)
    seg = GroundTruthSegmenter()
    state = seg.init_state(Vocabulary(names=list(SYNTHETIC_CLASSES)))
    tracks = seg.step(state, Frame(image=image, index=40, pts=None, t_capture_ns=0, truth=truth))
    visible = [t for t in truth if t.mask.any()]
    assert [i.track_id for i in tracks.instances] == [t.instance_id for t in visible]
    for inst, t in zip(tracks.instances, visible):
        assert np.array_equal(inst.full_mask(*t.mask.shape), t.mask) and inst.score == 1.0 and inst.label == SYNTHETIC_CLASSES[t.class_id]
        ys, xs = np.nonzero(t.mask)
        assert inst.box_xyxy == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert Instance.from_mask(1, 0, "x", 1.0, np.zeros((4, 4), bool)) is None


def test_overlay_tints_masks_and_draws_labels():
    scene = SyntheticScene(SceneConfig(seed=2, width=320, height=360, instances=2))
    image, truth = scene.render(40)
    seg = GroundTruthSegmenter()
    tracks = seg.step(seg.init_state(Vocabulary(names=list(SYNTHETIC_CLASSES))),
                      Frame(image=image, index=40, pts=None, t_capture_ns=0, truth=truth))
    assert tracks.instances
    out = draw_overlay(image, tracks, TextRenderer(), alpha=0.5)
    assert out.shape == image.shape and out is not image
    inst = tracks.instances[-1]
    alone = draw_overlay(image, Tracks(40, image.shape[1], image.shape[0], [inst]), TextRenderer(), alpha=0.5)
    m = inst.full_mask(*image.shape[:2])
    x0, y0, x1, y1 = (int(v) for v in inst.box_xyxy)
    m[y0:y0 + 20, :] = False  # away from the label plate and the box outline
    m[:, [x0, x1 - 1]] = False
    m[y1 - 1, :] = False
    if m.any():
        expected = (image[m] * 0.5 + track_colour(inst.track_id) * 0.5).astype(np.uint8)
        assert np.abs(alone[m].astype(int) - expected.astype(int)).max() <= 1
    outside = np.ones(image.shape[:2], bool)  # rows no box or label reaches stay untouched
    for i in tracks.instances:
        _, by0, _, by1 = (int(v) for v in i.box_xyxy)
        outside[max(0, by0 - 25):by1 + 25] = False
    assert outside.any()
    assert np.array_equal(out[outside], image[outside])
    assert track_colour(7).tolist() == track_colour(7).tolist()
    assert track_colour(7).tolist() != track_colour(8).tolist()


def test_overlay_labels_of_overlapping_boxes_do_not_overlap():
    from streamseg.engine.overlay import place_label

    placed: list[tuple[int, int, int, int]] = []
    rects = []
    for x, y in [(100, 50), (104, 52), (98, 49), (300, 200)]:  # three boxes at nearly the same corner
        tx, ty = place_label(x, y, 80, 16, 640, 360, placed)
        placed.append((tx, ty, tx + 80, ty + 16))
        rects.append(placed[-1])
    for i, p in enumerate(rects):
        for q in rects[i + 1:]:
            assert not (p[0] < q[2] and q[0] < p[2] and p[1] < q[3] and q[1] < p[3]), (p, q)
    assert rects[0] == (100, 34, 180, 50)  # the first sits right above its box
    assert rects[3] == (300, 184, 380, 200)  # a label with room stays where it belongs
