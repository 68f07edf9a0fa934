"""Protocol v1 encode/decode without sockets: exact round trips, the wire layout, and rejection of bad input."""
from __future__ import annotations

import msgpack
import numpy as np
import pytest
from pycocotools import mask as coco_mask
from transport_helpers import VOCAB, border_masks, make_tracks

from streamseg.errors import ProtocolError
from streamseg.interface import Frame, Instance, Tracks
from streamseg.transport import rle
from streamseg.transport.messages import EosMessage, SegMessage, StatusMessage
from streamseg.transport.protocol import decode, encode_eos, encode_seg, encode_status

SEG_KEYS = {"v", "stream", "epoch", "seq", "frame_index", "pts", "t_capture_ns", "t_publish_ns", "width",
            "height", "vocab", "instances"}
INSTANCE_KEYS = {"id", "class_id", "label", "score", "box_xyxy", "mask_part", "mask_box"}


def test_round_trip_masks_are_exact_including_borders_full_frame_single_pixels_and_empty():
    masks = border_masks()
    frame, tracks = make_tracks(masks)
    message = decode(encode_seg("cam0", 3, 1, frame, tracks, VOCAB, t_publish_ns=5))
    assert isinstance(message, SegMessage)
    assert len(message.instances) == len(masks)
    for sent, got, original in zip(tracks.instances, message.instances, masks):
        assert got.mask.dtype == bool and got.mask.shape == (48, 64)
        np.testing.assert_array_equal(got.mask, original)
        assert got.area == int(original.sum())
        assert (got.id, got.class_id, got.label) == (sent.track_id, sent.class_id, sent.label)
        assert got.score == pytest.approx(sent.score)
        assert got.box_xyxy == sent.box_xyxy
    # tight boxes: full frame, single pixels at both corners, empty mask
    assert message.instances[4].mask_box == (0, 0, 64, 48)
    assert message.instances[5].mask_box == (0, 0, 1, 1)
    assert message.instances[6].mask_box == (63, 47, 1, 1)
    assert message.instances[7].mask_box == (33, 17, 1, 1)
    assert message.instances[-1].mask_box == (0, 0, 0, 0)


def test_random_masks_round_trip_exactly():
    rng = np.random.default_rng(1)
    for trial in range(40):
        height, width = (int(v) for v in rng.integers(1, 50, 2))
        masks = [rng.random((height, width)) < rng.uniform(0.0, 1.0) for _ in range(3)]
        frame, tracks = make_tracks(masks)
        message = decode(encode_seg("s", trial, 0, frame, tracks, VOCAB))
        for got, original in zip(message.instances, masks):
            np.testing.assert_array_equal(got.mask, original)


def test_zero_instances_is_topic_and_header_only():
    frame, tracks = make_tracks([])
    parts = encode_seg("cam0", 0, 0, frame, tracks, VOCAB)
    assert len(parts) == 2
    message = decode(parts)
    assert message.instances == [] and (message.width, message.height) == (64, 48)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' decode vs numpy 2
def test_header_fields_follow_the_design_exactly():
    masks = border_masks()[:3]
    frame, tracks = make_tracks(masks, index=41, pts=1.5, t_capture_ns=123_456_789_000)
    parts = encode_seg("cam-7", 12, 2, frame, tracks, VOCAB, t_publish_ns=123_999_999_000)
    assert parts[0] == b"seg/cam-7"
    header = msgpack.unpackb(parts[1])
    assert set(header) == SEG_KEYS
    assert header["v"] == 1 and header["stream"] == "cam-7"
    assert (header["epoch"], header["seq"], header["frame_index"], header["pts"]) == (2, 12, 41, 1.5)
    assert (header["t_capture_ns"], header["t_publish_ns"]) == (123_456_789_000, 123_999_999_000)
    assert (header["width"], header["height"]) == (64, 48)
    assert header["vocab"] == {"id": VOCAB.vocab_id, "names": VOCAB.names}
    for i, item in enumerate(header["instances"]):
        assert set(item) == INSTANCE_KEYS
        assert item["mask_part"] == 2 + i
        x, y, w, h = item["mask_box"]
        # the part is plain COCO: pycocotools decodes it and pasting at (x, y) gives the mask back
        crop = coco_mask.decode({"size": [h, w], "counts": parts[item["mask_part"]]})
        full = np.zeros((48, 64), bool)
        full[y:y + h, x:x + w] = crop.astype(bool)
        np.testing.assert_array_equal(full, masks[i])
    message = decode(parts)
    assert (message.stream, message.seq, message.epoch, message.frame_index, message.pts) == ("cam-7", 12, 2, 41, 1.5)
    assert message.vocab_names == VOCAB.names and message.vocab_id == VOCAB.vocab_id
    assert message.age_ms(now_ns=123_456_789_000 + 2_500_000) == pytest.approx(2.5)


def test_pts_unknown_and_publish_time_defaults_to_now():
    import time

    frame, tracks = make_tracks([], pts=None)
    before = time.time_ns()
    message = decode(encode_seg("a", 0, 0, frame, tracks, VOCAB))
    assert message.pts is None
    assert before <= message.t_publish_ns <= time.time_ns()


def test_docs_worked_example_counts():
    # docs/protocol.md walks through this mask: 3 pixels, tight box (2, 1, 2, 2), counts "021O"
    mask = np.zeros((5, 6), bool)
    mask[1, 2] = mask[2, 2] = mask[2, 3] = True
    assert rle.encode_mask(mask) == ((2, 1, 2, 2), b"021O")
    assert rle.parse_counts(b"021O", 2, 2).tolist() == [0, 2, 1, 1]
    # multi-character value with a sign-bit continuation: 1020 is "lo0"
    assert rle.parse_counts(b"0lo0", 1, 1020).tolist() == [0, 1020]


def test_status_and_eos_round_trip():
    status = {"state": "reconnecting", "fps_in": 29.5, "fps_out": 14.25, "dropped": 17, "epoch": 3,
              "latency_ms": {"segment": (40.0, 55.5), "capture_to_publish": {"p50": 60, "p95": 80}}}
    parts = encode_status("cam1", status)
    assert parts[0] == b"status/cam1" and len(parts) == 2
    message = decode(parts)
    assert isinstance(message, StatusMessage)
    assert (message.state, message.fps_in, message.fps_out, message.dropped, message.epoch) == \
        ("reconnecting", 29.5, 14.25, 17, 3)
    assert message.latency_ms == {"segment": {"p50": 40.0, "p95": 55.5},
                                  "capture_to_publish": {"p50": 60.0, "p95": 80.0}}
    assert (message.frames_in, message.frames_out, message.error) == (None, None, None)
    failed = decode(encode_status("cam1", {**status, "state": "ended", "frames_in": 120, "frames_out": 118,
                                           "error": "cannot connect to rtsp://127.0.0.1:9/x"}))
    assert (failed.frames_in, failed.frames_out, failed.error) == \
        (120, 118, "cannot connect to rtsp://127.0.0.1:9/x")
    eos = decode(encode_eos("cam1", 3, 99, "source ended"))
    assert isinstance(eos, EosMessage)
    assert (eos.stream, eos.epoch, eos.seq, eos.reason) == ("cam1", 3, 99, "source ended")


@pytest.mark.parametrize("change, fragment", [
    ({"state": "sleeping"}, "state"),
    ({"bogus": 1}, "unknown field"),
    ({"latency_ms": {"decode": 3}}, "latency_ms"),
])
def test_encode_status_rejects_bad_fields(change, fragment):
    status = {"state": "connected", "fps_in": 1, "fps_out": 1, "dropped": 0, "latency_ms": {}, "epoch": 0}
    status.update(change)
    with pytest.raises(ProtocolError, match=fragment):
        encode_status("s", status)
    with pytest.raises(ProtocolError, match="missing"):
        encode_status("s", {"state": "connected"})


def test_encode_rejects_mask_of_wrong_size_and_bad_stream_id():
    frame = Frame(np.zeros((10, 10, 3), np.uint8), 0, None, 0)
    tracks = Tracks(0, 10, 10, [Instance(1, 0, "person", 1.0, (8, 8, 13, 13), np.ones((5, 5), bool), (8, 8, 5, 5))])
    with pytest.raises(ProtocolError, match="does not fit the 10x10 frame"):
        encode_seg("s", 0, 0, frame, tracks, VOCAB)
    with pytest.raises(ProtocolError, match="stream id"):
        encode_seg("has space", 0, 0, frame, Tracks(0, 10, 10), VOCAB)
    nan_score = Instance(1, 0, "person", float("nan"), (0, 0, 1, 1), np.ones((1, 1), bool), (0, 0, 1, 1))
    with pytest.raises(ProtocolError, match="finite"):
        encode_seg("s", 0, 0, frame, Tracks(0, 10, 10, [nan_score]), VOCAB)


def _seg_parts() -> list[bytes]:
    mask = np.zeros((20, 30), bool)
    mask[5:9, 7:20] = True
    frame, tracks = make_tracks([mask])
    return encode_seg("cam0", 0, 0, frame, tracks, VOCAB)


def _with_header(**changes) -> list[bytes]:
    parts = _seg_parts()
    header = msgpack.unpackb(parts[1])
    for key, value in changes.items():
        if value is _DELETE:
            del header[key]
        else:
            header[key] = value
    return [parts[0], msgpack.packb(header), *parts[2:]]


def _with_instance(**changes) -> list[bytes]:
    parts = _seg_parts()
    header = msgpack.unpackb(parts[1])
    header["instances"][0].update(changes)
    return [parts[0], msgpack.packb(header), *parts[2:]]


_DELETE = object()

BAD_MESSAGES = {
    "one part": lambda: [b"seg/cam0"],
    "unknown topic kind": lambda: [b"video/cam0", *_seg_parts()[1:]],
    "topic without stream": lambda: [b"seg/", *_seg_parts()[1:]],
    "topic not utf-8": lambda: [b"seg/\xff\xfe", *_seg_parts()[1:]],
    "header not msgpack": lambda: [b"seg/cam0", b"\xc1\xc1garbage", *_seg_parts()[2:]],
    "header is a list": lambda: [b"seg/cam0", msgpack.packb([1, 2]), *_seg_parts()[2:]],
    "version 2": lambda: _with_header(v=2),
    "no version": lambda: _with_header(v=_DELETE),
    "stream mismatch": lambda: _with_header(stream="other"),
    "seq missing": lambda: _with_header(seq=_DELETE),
    "seq is text": lambda: _with_header(seq="7"),
    "width zero": lambda: _with_header(width=0),
    "instances not a list": lambda: _with_header(instances={}),
    "extra mask part": lambda: [*_seg_parts(), b"0"],
    "missing mask part": lambda: _seg_parts()[:2],
    "mask_box outside frame": lambda: _with_instance(mask_box=[25, 5, 13, 4]),
    "mask_box negative": lambda: _with_instance(mask_box=[-1, 5, 13, 4]),
    "mask_part out of range": lambda: _with_instance(mask_part=9),
    "score is text": lambda: _with_instance(score="high"),
    "box has 3 numbers": lambda: _with_instance(box_xyxy=[1.0, 2.0, 3.0]),
    "counts bad character": lambda: [*_seg_parts()[:2], b"0\x00\xff"],
    "counts truncated": lambda: [*_seg_parts()[:2], b"0l"],
    "counts too few pixels": lambda: [*_seg_parts()[:2], b"05"],
    "counts too many pixels": lambda: [*_seg_parts()[:2], b"0lo0"],
    "counts empty": lambda: [*_seg_parts()[:2], b""],
    "status bad state": lambda: [b"status/a", msgpack.packb({"v": 1, "stream": "a", "epoch": 0, "t_publish_ns": 1,
                                                             "state": "??", "fps_in": 1, "fps_out": 1, "dropped": 0,
                                                             "latency_ms": {}})],
    "eos without reason": lambda: [b"eos/a", msgpack.packb({"v": 1, "stream": "a", "epoch": 0, "seq": 1,
                                                            "t_publish_ns": 1})],
    "eos with extra part": lambda: [*encode_eos("a", 0, 1, "end"), b"x"],
}


@pytest.mark.parametrize("name", sorted(BAD_MESSAGES))
def test_malformed_messages_raise_one_line_protocol_error(name):
    with pytest.raises(ProtocolError) as info:
        decode(BAD_MESSAGES[name]())
    text = str(info.value)
    assert text and "\n" not in text


def test_unknown_header_keys_are_ignored():
    message = decode(_with_header(future_field={"x": 1}))
    assert message.seq == 0 and message.instances[0].area == 4 * 13


def test_deferred_mask_check_raises_on_first_use():
    parts = [*_seg_parts()[:2], b"05"]
    message = decode(parts, check_masks=False)  # header fine: accepted for now
    with pytest.raises(ProtocolError, match="pixels"):
        _ = message.instances[0].mask
