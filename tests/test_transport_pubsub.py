"""Publisher and Subscriber over real ZeroMQ sockets (tcp on 127.0.0.1, ipc in a temp dir)."""
from __future__ import annotations

import time

import numpy as np
import pytest
from transport_helpers import VOCAB, border_masks, make_tracks, sync, with_seq

from streamseg.errors import ConfigError, ProtocolError
from streamseg.transport.messages import EosMessage, SegMessage, StatusMessage
from streamseg.transport.protocol import encode_seg
from streamseg.transport.publisher import Publisher
from streamseg.transport.subscriber import Subscriber

STATUS = {"state": "connected", "fps_in": 30.0, "fps_out": 29.0, "dropped": 2, "epoch": 0,
          "latency_ms": {"segment": (20.0, 31.0)}}


@pytest.fixture
def tcp_pair():
    pub = Publisher("tcp://127.0.0.1:*", send_hwm=100)
    sub = Subscriber(pub.address)
    sync(pub, sub)
    yield pub, sub
    sub.close()
    pub.close(linger_ms=0)


def _small_frame(index: int = 0):
    mask = np.zeros((24, 32), bool)
    mask[3:9, 4 + index % 10:20] = True
    return make_tracks([mask], index=index)


def _recv_seg(sub: Subscriber, timeout_s: float = 3.0) -> SegMessage:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = sub.recv(100)
        if isinstance(message, SegMessage):
            return message
    raise AssertionError("no seg message")


def test_round_trip_over_tcp_and_ipc(tmp_path):
    masks = border_masks()
    frame, tracks = make_tracks(masks, index=5, pts=0.2, t_capture_ns=time.time_ns())
    for address in ("tcp://127.0.0.1:*", f"ipc://{tmp_path / 'seg.ipc'}"):
        with Publisher(address) as pub, Subscriber(pub.address) as sub:
            sync(pub, sub)
            assert pub.publish_seg("cam0", 0, 4, frame, tracks, VOCAB)
            message = _recv_seg(sub)
            assert (message.stream, message.seq, message.epoch, message.frame_index) == ("cam0", 0, 4, 5)
            assert message.t_capture_ns == frame.t_capture_ns <= message.t_publish_ns
            assert 0 <= message.age_ms() < 60_000
            assert [i.id for i in message.instances] == [i.track_id for i in tracks.instances]
            for got, original in zip(message.instances, masks):
                np.testing.assert_array_equal(got.mask, original)


def test_seq_gaps_and_epoch_changes_are_reported(tcp_pair):
    pub, sub = tcp_pair
    plan = [(0, 0), (1, 0), (2, 0), (5, 0), (6, 1), (7, 1), (10, 2)]  # (seq, epoch)
    for seq, epoch in plan:
        frame, tracks = _small_frame(seq)
        pub.publish_seg("cam0", seq, epoch, frame, tracks, VOCAB)
    got = [_recv_seg(sub) for _ in plan]
    assert [m.seq for m in got] == [s for s, _ in plan]
    assert [m.seq_gap for m in got] == [0, 0, 0, 2, 0, 0, 2]
    assert [m.epoch_changed for m in got] == [False, False, False, False, True, False, True]
    assert (sub.gaps, sub.epoch_changes, sub.last_seq["cam0"], sub.epoch["cam0"]) == (4, 2, 10, 2)
    # EOS names the last seq published: the two lost before it are reported too
    pub.publish_eos("cam0", 2, 12, "source ended")
    eos = sub.recv(2000)
    assert isinstance(eos, EosMessage) and (eos.seq, eos.reason, eos.seq_gap) == (12, "source ended", 2)
    assert sub.gaps == 6 and "cam0" in sub.ended


def test_status_round_trip_carries_publisher_drop_count(tcp_pair):
    pub, sub = tcp_pair
    pub.publish_status("cam0", STATUS)
    message = sub.recv(2000)
    assert isinstance(message, StatusMessage)
    assert (message.state, message.fps_in, message.dropped, message.wire_dropped) == ("connected", 30.0, 2, 0)
    assert message.latency_ms == {"segment": {"p50": 20.0, "p95": 31.0}}


def test_several_streams_one_publisher_topic_filter_and_two_publishers(tmp_path):
    with Publisher("tcp://127.0.0.1:*") as pub_a, Publisher(f"ipc://{tmp_path / 'b.ipc'}") as pub_b, \
            Subscriber([pub_a.address, pub_b.address]) as both, \
            Subscriber(pub_a.address, topics=("seg/left",)) as left_only:
        sync(pub_a, both)
        sync(pub_b, both)
        deadline = time.monotonic() + 5
        frame, tracks = _small_frame()
        while left_only.recv(20) is None:  # left_only's own slow-joiner wait
            pub_a.publish_seg("left", 0, 0, frame, tracks, VOCAB)
            assert time.monotonic() < deadline
        while both.recv(50) is not None:
            pass
        for seq in range(1, 4):
            pub_a.publish_seg("left", seq, 0, frame, tracks, VOCAB)
            pub_a.publish_seg("right", seq, 0, frame, tracks, VOCAB)
            pub_b.publish_seg("far", seq, 0, frame, tracks, VOCAB)
        pub_a.publish_status("left", STATUS)
        seen: dict[str, list[int]] = {}
        for _ in range(9):
            message = _recv_seg(both)
            seen.setdefault(message.stream, []).append(message.seq)
        assert seen == {"left": [1, 2, 3], "right": [1, 2, 3], "far": [1, 2, 3]}
        only = [left_only.recv(1000) for _ in range(3)]
        assert [(m.stream, m.seq) for m in only] == [("left", 1), ("left", 2), ("left", 3)]
        assert left_only.recv(200) is None  # neither "right" nor the status topic got through


def test_recv_latest_keeps_newest_per_stream_and_never_skips_eos(tcp_pair):
    pub, sub = tcp_pair
    for seq in range(5):
        for stream in ("a", "b"):
            frame, tracks = _small_frame(seq)
            pub.publish_seg(stream, seq, 0, frame, tracks, VOCAB)
        pub.publish_status("a", {**STATUS, "fps_in": float(seq)})
    pub.publish_eos("a", 0, 4, "source ended")
    time.sleep(0.3)  # a slow consumer: everything is queued by now
    got = [sub.recv_latest(1000) for _ in range(4)]
    # in the order the kept messages arrived: a4, b4, the newest status, then the EOS
    assert [(type(m).__name__, m.stream) for m in got] == [
        ("SegMessage", "a"), ("SegMessage", "b"), ("StatusMessage", "a"), ("EosMessage", "a")]
    segs = {m.stream: m for m in got if isinstance(m, SegMessage)}
    assert segs["a"].seq == 4 and segs["b"].seq == 4
    assert segs["a"].skipped == 4 and segs["b"].skipped == 4 and segs["a"].seq_gap == 0
    assert [m for m in got if isinstance(m, StatusMessage)][0].fps_in == 4.0  # newest status only
    sent = _small_frame(4)[1].instances[0]
    np.testing.assert_array_equal(segs["a"].instances[0].mask, sent.full_mask(*segs["a"].instances[0].mask.shape))
    assert sub.recv_latest(100) is None and sub.skipped == 8


def test_slow_subscriber_does_not_slow_the_publisher_and_catches_up_to_the_newest():
    # ~0.5 MB messages (a checkerboard's RLE is one character per pixel) overflow every buffer fast
    board = (np.indices((480, 960)).sum(axis=0) % 2).astype(bool)
    frame, tracks = make_tracks([board])
    parts = encode_seg("cam0", 0, 0, frame, tracks, VOCAB)
    total = 200
    with Publisher("tcp://127.0.0.1:*", send_hwm=4) as pub, Subscriber(pub.address, rcvhwm=4) as sub:
        sync(pub, sub)
        assert pub.send(with_seq(parts, 0))
        assert _recv_seg(sub).seq == 0
        received_before = sub.received
        sent_before = pub.sent
        for seq in range(1, total):  # the subscriber reads nothing meanwhile
            pub.send(with_seq(parts, seq))
        assert sub.received == received_before
        # lossy PUB: every send returned at once, nothing refused; the overflow is lost per subscriber
        assert pub.sent - sent_before == total - 1 and pub.dropped == 0
        delivered = [0]
        newest = None
        deadline = time.monotonic() + 10
        while newest is None or newest.seq != total:
            assert time.monotonic() < deadline, "the newest message never arrived"
            message = sub.recv_latest(100)
            if message is None:
                pub.send(with_seq(parts, total))  # the stream goes on: one more, the newest
                continue
            delivered.append(message.seq)
            assert message.seq_gap + message.skipped == message.seq - delivered[-2] - 1
            newest = message
        assert delivered == sorted(delivered)
        assert sub.gaps > 0  # the wire really dropped messages for this subscriber
        assert len(delivered) + sub.skipped + sub.gaps == total + 1  # every seq accounted for exactly once
        np.testing.assert_array_equal(newest.instances[0].mask, board)


def test_nodrop_publisher_counts_refused_messages_and_subscriber_sees_them_as_gaps():
    board = (np.indices((480, 960)).sum(axis=0) % 2).astype(bool)
    frame, tracks = make_tracks([board])
    parts = encode_seg("cam0", 0, 0, frame, tracks, VOCAB)
    total = 200
    with Publisher("tcp://127.0.0.1:*", send_hwm=2, nodrop=True) as pub, Subscriber(pub.address, rcvhwm=2) as sub:
        sync(pub, sub)
        results = [pub.send(with_seq(parts, seq)) for seq in range(total)]  # subscriber asleep
        assert pub.dropped > 0 and pub.dropped == results.count(False)
        assert pub.sent >= results.count(True)
        seqs = []
        deadline = time.monotonic() + 10
        while len(seqs) < results.count(True) and time.monotonic() < deadline:
            message = sub.recv(100)
            if isinstance(message, SegMessage):
                seqs.append(message.seq)
        assert sub.recv(100) is None
        assert seqs == [seq for seq, ok in enumerate(results) if ok]  # exactly what was accepted
        assert pub.send(with_seq(parts, total))
        assert _recv_seg(sub).seq == total
        # refused messages after the first one received are gaps; none of them sneaked through
        assert sub.gaps == sum(1 for seq, ok in enumerate(results) if not ok and seq > seqs[0])


def test_garbage_on_the_wire_raises_protocol_error_and_subscriber_recovers(tcp_pair):
    pub, sub = tcp_pair
    pub.send([b"seg/cam0", b"\x93not a header"])
    with pytest.raises(ProtocolError):
        sub.recv(2000)
    pub.send([b"seg/cam0", b"\x81\xa1v\x02"])  # {"v": 2}
    with pytest.raises(ProtocolError, match="version"):
        sub.recv(2000)
    frame, tracks = _small_frame()
    pub.publish_seg("cam0", 0, 0, frame, tracks, VOCAB)
    assert _recv_seg(sub).seq == 0 and sub.malformed == 2


def test_bad_addresses_are_config_errors():
    with Publisher("tcp://127.0.0.1:*") as pub:
        with pytest.raises(ConfigError, match="cannot bind"):
            Publisher(pub.address)
    with pytest.raises(ConfigError, match="cannot connect"):
        Subscriber("nonsense-address")
    with pytest.raises(ConfigError, match="send_hwm"):
        Publisher("tcp://127.0.0.1:*", send_hwm=0)


def test_closed_publisher_refuses_quietly():
    pub = Publisher("tcp://127.0.0.1:*")
    pub.close()
    frame, tracks = _small_frame()
    assert pub.publish_seg("cam0", 0, 0, frame, tracks, VOCAB) is False
    assert pub.publish_eos("cam0", 0, 0, "stopped") is False
    assert pub.sent == 0 and pub.dropped == 0  # a closed socket is not a high-water-mark drop


def test_seq_going_backwards_is_a_restart_not_a_gap(tcp_pair):
    pub, sub = tcp_pair
    for seq in (0, 1, 2, 0, 1):  # the engine was restarted after seq 2
        frame, tracks = _small_frame(seq)
        pub.publish_seg("cam0", seq, 0, frame, tracks, VOCAB)
    got = [_recv_seg(sub) for _ in range(5)]
    assert [m.seq_gap for m in got] == [0] * 5
    assert (sub.restarts, sub.gaps, sub.last_seq["cam0"]) == (1, 0, 1)


def test_publisher_counts_subscribers_of_a_topic_as_they_come_and_go():
    """XPUB hands the publisher each subscription: waiting for N subscribers is real, not a sleep."""
    with Publisher("tcp://127.0.0.1:*") as pub:
        assert pub.subscribers(b"seg/cam") == 0
        assert not pub.wait_subscribers(1, [b"seg/cam"], timeout_s=0.2)
        first = Subscriber(pub.address)  # seg/, status/, eos/
        second = Subscriber(pub.address, topics=["seg/cam"])
        other = Subscriber(pub.address, topics=["seg/dog", "status/"])  # no seg/cam messages for it
        try:
            # every peer's subscriptions arrive on their own connection: wait for all three topics
            assert pub.wait_subscribers(2, [b"seg/cam", b"seg/dog", b"status/cam"], timeout_s=10)
            assert pub.subscribers(b"seg/cam") == 2
            assert pub.subscribers(b"seg/dog") == 2 and pub.subscribers(b"status/cam") == 2
            assert pub.wait_subscribers(1, [b"eos/cam"], timeout_s=10)
            assert pub.subscribers(b"eos/cam") == 1
            second.close()
            deadline = time.monotonic() + 10
            while pub.subscribers(b"seg/cam") != 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert pub.subscribers(b"seg/cam") == 1  # a subscriber that left no longer counts
        finally:
            for sub in (first, second, other):
                sub.close()
