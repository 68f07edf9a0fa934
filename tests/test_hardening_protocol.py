"""Issue 10, the wire: bounded decoding (items 2, 8), recv_latest fairness (3), subscribe survives bad
messages (4), and a hypothesis fuzz of the decoder (every input -> a message or ProtocolError, bounded memory)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transport_helpers import VOCAB, make_tracks, sync

from streamseg.errors import ProtocolError
from streamseg.transport.commands import message_record
from streamseg.transport.limits import ProtocolLimits
from streamseg.transport.messages import SegMessage
from streamseg.transport.protocol import decode, encode_seg, encode_status
from streamseg.transport.publisher import Publisher
from streamseg.transport.subscriber import Subscriber

STATUS = {"state": "connected", "fps_in": 12.0, "fps_out": 12.0, "dropped": 0, "epoch": 0, "latency_ms": {}}


def _counts_for(n_pixels: int) -> bytes:
    """The COCO counts of an all-set crop of n_pixels: runs [0, n] (a few bytes claiming any area)."""
    out = bytearray(b"0")  # zero background pixels
    x = n_pixels
    while True:
        c = x & 0x1F
        x >>= 5
        more = not ((x == 0 and not c & 0x10) or (x == -1 and c & 0x10))
        out.append(48 + (c | (0x20 if more else 0)))
        if not more:
            return bytes(out)


def _attack(width: int, height: int, stream: str = "s") -> list[bytes]:
    """A ~200-byte seg message claiming a width x height frame with one full-frame mask."""
    header = {"v": 1, "stream": stream, "epoch": 0, "seq": 0, "frame_index": 0, "pts": None, "t_capture_ns": 0,
              "t_publish_ns": 0, "width": width, "height": height, "vocab": {"id": "x", "names": ["person"]},
              "instances": [{"id": 1, "class_id": 0, "label": "person", "score": 1.0, "box_xyxy": [0, 0, 1, 1],
                             "mask_part": 2, "mask_box": [0, 0, width, height]}]}
    counts = _counts_for(min(width * height, 2**62)) if width * height < 2**64 else b"0"
    return [f"seg/{stream}".encode(), msgpack.packb(header), counts]


@pytest.mark.parametrize("side", [16384, 65536, 2**62, 2**64 - 1])
def test_oversized_frame_is_a_protocol_error_before_any_allocation(side):
    parts = _attack(side, side)
    assert sum(map(len, parts)) < 250
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError, match="exceeds the limit"):
            decode(parts)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # was 808 MB (16384^2) and 2 x 4 GiB (65536^2)


def test_limits_are_configurable_and_the_largest_accepted_mask_decodes_exactly():
    limits = ProtocolLimits(max_side=512, max_pixels=512 * 256)
    message = decode(_attack(512, 256), limits=limits)
    assert message.instances[0].area == 512 * 256 and message.instances[0].mask.all()
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        decode(_attack(512, 257), limits=limits)
    with pytest.raises(ProtocolError, match="mask part is longer"):
        decode(_attack(4, 4)[:2] + [b"0" * 200], limits=limits)


def test_subscriber_sets_zmq_maxmsgsize_and_never_delivers_an_oversized_part():
    limits = ProtocolLimits(max_part_bytes=64 * 1024)
    with Publisher("tcp://127.0.0.1:*", send_hwm=100) as pub, Subscriber(pub.address, limits=limits) as sub:
        import zmq

        assert sub._socket.getsockopt(zmq.MAXMSGSIZE) == 64 * 1024
        sync(pub, sub)
        frame, tracks = make_tracks([])
        parts = encode_seg("big", 0, 0, frame, tracks, VOCAB)
        pub.send([parts[0], parts[1] + b"\x00" * (1 << 20)])  # 1 MiB header part
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            message = sub.recv(100)
            assert message is None or message.stream != "big"


SPEC_VIOLATIONS = {
    "v is true": ({"v": True}, None, "version"),
    "v is 1.0": ({"v": 1.0}, None, "version"),
    "class_id outside vocab": (None, {"class_id": 3}, "class_id"),
    "negative class_id": (None, {"class_id": -1}, "class_id"),
    "label not the vocab name": (None, {"label": "car"}, "label"),
    "NaN box": (None, {"box_xyxy": [0.0, float("nan"), 1.0, 1.0]}, "finite"),
    "infinite box": (None, {"box_xyxy": [0.0, 0.0, float("inf"), 1.0]}, "finite"),
    "NaN pts": ({"pts": float("nan")}, None, "pts"),
    "infinite pts": ({"pts": float("-inf")}, None, "pts"),
    "score 7.5": (None, {"score": 7.5}, "score"),
    "negative score": (None, {"score": -0.1}, "score"),
    "negative seq": ({"seq": -1}, None, "seq"),
    "negative epoch": ({"epoch": -3}, None, "epoch"),
    "seq beyond int64": ({"seq": 2**64 - 1}, None, "seq"),
    "negative frame_index": ({"frame_index": -2}, None, "frame_index"),
}


def _seg_two_instances() -> list[bytes]:
    a = np.zeros((20, 30), bool)
    a[2:5, 3:9] = True
    b = np.zeros((20, 30), bool)
    b[10:15, 10:20] = True
    frame, tracks = make_tracks([a, b])
    return encode_seg("cam0", 5, 1, frame, tracks, VOCAB)


@pytest.mark.parametrize("name", list(SPEC_VIOLATIONS))
def test_decoder_rejects_spec_violations(name):
    top, inst, fragment = SPEC_VIOLATIONS[name]
    parts = _seg_two_instances()
    header = msgpack.unpackb(parts[1])
    header.update(top or {})
    header["instances"][0].update(inst or {})
    with pytest.raises(ProtocolError, match=fragment):
        decode([parts[0], msgpack.packb(header), *parts[2:]])


def test_two_instances_sharing_one_mask_part_and_bad_status_numbers_are_rejected():
    parts = _seg_two_instances()
    header = msgpack.unpackb(parts[1])
    header["instances"][1]["mask_part"] = 2
    with pytest.raises(ProtocolError, match="share one mask part"):
        decode([parts[0], msgpack.packb(header), *parts[2:]])
    good = msgpack.unpackb(encode_status("cam0", STATUS)[1])
    for key, value in [("dropped", -1), ("fps_in", -5.0), ("fps_out", float("inf")), ("epoch", -1)]:
        with pytest.raises(ProtocolError, match=key):
            decode([b"status/cam0", msgpack.packb({**good, key: value})])


def test_one_huge_seq_does_not_inflate_the_subscribers_lost_count():
    frame, tracks = make_tracks([])
    with Publisher("tcp://127.0.0.1:*", send_hwm=100) as pub, Subscriber(pub.address) as sub:
        sync(pub, sub)
        for seq in (0, 1, 2**62, 3, 5):
            pub.publish_seg("cam0", seq, 0, frame, tracks, VOCAB)
        got = []
        deadline = time.monotonic() + 3
        while len(got) < 5 and time.monotonic() < deadline:
            message = sub.recv(100)
            if isinstance(message, SegMessage):
                got.append(message.seq)
    assert got == [0, 1, 2**62, 3, 5]
    assert sub.gaps == 1  # only 4 is missing (was 2**62 - 2 = 4.6e18)
    assert sub.restarts == 2  # the jump to 2**62 and the way back


def test_recv_latest_gives_a_slow_consumer_the_newest_seg_every_other_call():
    """Issue 10 item 3: at one call per status period the old queue returned the status every time."""
    with Publisher("tcp://127.0.0.1:*", send_hwm=1000) as pub, Subscriber(pub.address) as sub:
        sync(pub, sub)
        seq = 0
        kinds = []
        for _ in range(6):  # each round: 12 seg with one status in the middle, then one call
            newest = seq + 11
            for k in range(12):
                frame, tracks = make_tracks([], index=seq)
                pub.publish_seg("cam0", seq, 0, frame, tracks, VOCAB)
                seq += 1
                if k == 5:
                    pub.publish_status("cam0", STATUS)
            time.sleep(0.15)
            message = sub.recv_latest(500)
            kinds.append(message.kind)
            if isinstance(message, SegMessage):
                assert message.seq == newest and message.skipped >= 11
    assert kinds.count("seg") == 3 and kinds.count("status") == 3, kinds  # was ['status'] * 6


def _bad_messages() -> list[list[bytes]]:
    return [[b"seg/cam0", b"\xc1\xc1not msgpack"], [b"seg/cam0"], _attack(65536, 65536, "cam0")]


@pytest.mark.parametrize("latest", [False, True])
def test_subscribe_skips_malformed_messages_and_reports_them(latest):
    with Publisher("tcp://127.0.0.1:*", send_hwm=1000) as pub:
        cmd = [sys.executable, "-m", "streamseg", "subscribe", pub.address, "--count", "3", "--json",
               "--timeout", "10", "--topic", "seg/cam0"] + (["--latest"] if latest else [])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stop = threading.Event()

        def publish() -> None:
            seq = 0
            while not stop.is_set():
                for bad in _bad_messages():
                    pub.send(bad)
                frame, tracks = make_tracks([np.ones((48, 64), bool)], index=seq)
                pub.publish_seg("cam0", seq, 0, frame, tracks, VOCAB)
                seq += 1
                stop.wait(0.05)

        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        try:
            out, err = proc.communicate(timeout=30)
        finally:
            stop.set()
            thread.join()
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 3 and all(r["type"] == "seg" and r["instances"][0]["area"] == 48 * 64 for r in records)
    assert "header is not valid msgpack" in err and "exceeds the limit" in err
    assert "streamseg: skipped" in err and "malformed message(s)" in err


# ------------------------------------------------------------------ fuzz

_FUZZ_LIMITS = ProtocolLimits(max_side=4096, max_pixels=1 << 16, max_part_bytes=1 << 16, max_instances=16)
_MEMORY_BOUND = 16 << 20  # bytes: what any accepted or rejected message may make decoding allocate

_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) | st.binary(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
_rle_bytes = st.binary(max_size=40) | st.text(alphabet=[chr(c) for c in range(48, 112)], max_size=40).map(str.encode)


def _valid_parts(seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
    masks = [rng.random((h, w)) < rng.uniform(0, 1) for _ in range(int(rng.integers(0, 3)))]
    frame, tracks = make_tracks(masks) if masks else make_tracks([])
    if seed % 3 == 0:
        return encode_status("cam0", STATUS)
    return encode_seg("cam0", seed, 0, frame, tracks, VOCAB)


@st.composite
def _messages(draw) -> list[bytes]:
    kind = draw(st.integers(0, 3))
    if kind == 0:  # raw garbage parts
        return draw(st.lists(st.binary(max_size=64), min_size=0, max_size=5))
    parts = _valid_parts(draw(st.integers(0, 50)))
    header = msgpack.unpackb(parts[1])
    if kind == 1:  # one header field replaced, added or removed
        key = draw(st.sampled_from(sorted(header) + ["extra"]))
        if draw(st.booleans()):
            header.pop(key, None)
        else:
            header[key] = draw(_values)
    elif kind == 2 and header.get("instances"):  # one instance field replaced
        inst = header["instances"][draw(st.integers(0, len(header["instances"]) - 1))]
        inst[draw(st.sampled_from(sorted(inst)))] = draw(_values | st.integers(-5, 5)
                                                         | st.lists(st.integers(-2**63, 2**64 - 1), max_size=5))
    packed = msgpack.packb(header, use_bin_type=True)
    masks = list(parts[2:])
    if kind == 3 and masks:  # a mask part replaced
        masks[draw(st.integers(0, len(masks) - 1))] = draw(_rle_bytes)
    return [parts[0], packed, *masks]


_fuzz_count = {"examples": 0, "messages": 0, "errors": 0}


@settings(max_examples=int(os.environ.get("STREAMSEG_FUZZ_EXAMPLES", "600")), deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(_messages())
def test_fuzz_decoder_every_input_is_a_message_or_a_protocol_error_with_bounded_memory(parts):
    _fuzz_count["examples"] += 1
    tracemalloc.start()
    try:
        try:
            message = decode(parts, check_masks=bool(len(parts) % 2), limits=_FUZZ_LIMITS)
            if isinstance(message, SegMessage):
                for inst in message.instances:
                    assert inst.mask.shape == (message.height, message.width)
                    assert 0 <= inst.area <= message.width * message.height
            json.dumps(message_record(message), allow_nan=False)  # what subscribe --json prints is valid JSON
            _fuzz_count["messages"] += 1
        except ProtocolError as exc:
            assert "\n" not in str(exc)
            _fuzz_count["errors"] += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < _MEMORY_BOUND
