"""The client's end of the wire: a SUB socket on one or more publishers, decoding protocol v1.

Besides decoding, it keeps per-stream bookkeeping so a consumer learns what it missed: seq gaps
(messages lost on the wire), epoch changes (the source reconnected) and, in drain-to-latest mode,
how many messages it skipped. ZMQ_CONFLATE cannot do drain-to-latest for multipart messages, so
it is done here: draining decodes headers only; masks are decoded for the messages returned.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import zmq

from streamseg.errors import ConfigError, ProtocolError
from streamseg.transport.limits import DEFAULT_LIMITS, ProtocolLimits
from streamseg.transport.messages import EosMessage, Message, SegMessage, StatusMessage
from streamseg.transport.protocol import decode

DEFAULT_TOPICS = ("seg/", "status/", "eos/")
_MAX_DRAIN = 100_000  # bound on one drain, so a flood cannot keep recv_latest from returning


class Subscriber:
    """SUB socket connected to every address, subscribed to the topic prefixes.

    A prefix matches by bytes: "seg/cam1" also matches "seg/cam10". Stream ids are assumed unique
    across the publishers a subscriber listens to. Not thread-safe (one consumer thread).
    `limits` bound what a message may make it allocate; ZeroMQ itself refuses any part larger
    than limits.max_part_bytes (ZMQ_MAXMSGSIZE: the offending peer's connection is dropped).
    """

    def __init__(self, addresses: str | Sequence[str], topics: Sequence[str] = DEFAULT_TOPICS,
                 rcvhwm: int = 1000, context: zmq.Context | None = None, curve: Any = None,
                 limits: ProtocolLimits = DEFAULT_LIMITS) -> None:
        """``curve``: a CURVE key folder (client.key_secret + server.key) or a CurveClient."""
        self.addresses = [addresses] if isinstance(addresses, str) else list(addresses)
        if not self.addresses:
            raise ConfigError("subscriber needs at least one publisher address")
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, rcvhwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, limits.max_part_bytes)
        self.limits = limits
        for prefix in topics:
            self._socket.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        if curve is not None:
            from streamseg.transport.curve import curve_client

            try:
                curve_client(curve).make_client(self._socket)
            except BaseException:
                self._socket.close(linger=0)
                raise
        for address in self.addresses:
            try:
                self._socket.connect(address)
            except zmq.ZMQError as exc:
                self._socket.close(linger=0)
                raise ConfigError(f"cannot connect subscriber to {address!r}: {exc}") from None
        self._pending: list[Message | ProtocolError] = []  # drained, not yet returned
        self.last_seq: dict[str, int] = {}  # per stream: seq of the last seg message received
        self.epoch: dict[str, int] = {}  # per stream: epoch of the last seg message received
        self.ended: set[str] = set()  # streams whose EOS arrived (cleared if they start again)
        self.received = 0  # well-formed messages received (returned or skipped)
        self.gaps = 0  # seg messages lost on the wire, over all streams
        self.skipped = 0  # seg messages superseded in drain-to-latest mode
        self.epoch_changes = 0
        self.restarts = 0  # a stream's seq went backwards: its publisher started again
        self.malformed = 0  # messages that failed to decode (each raised ProtocolError)
        self._closed = False

    # ------------------------------------------------------------ receiving

    def _wait(self, timeout_ms: int | None) -> bool:
        return bool(self._socket.poll(timeout=timeout_ms, flags=zmq.POLLIN))

    def _receive_one(self, check_masks: bool) -> Message | ProtocolError | None:
        """One queued message, decoded and tracked; None if nothing is queued."""
        try:
            parts = self._socket.recv_multipart(flags=zmq.NOBLOCK)
        except zmq.Again:
            return None
        try:
            message = decode(parts, check_masks=check_masks, limits=self.limits)
        except ProtocolError as exc:
            self.malformed += 1
            return exc
        self.received += 1
        self._track(message)
        return message

    def _track(self, message: Message) -> None:
        stream = message.stream
        if isinstance(message, SegMessage):
            self.ended.discard(stream)
            last = self.last_seq.get(stream)
            if last is not None:
                if last < message.seq <= last + 1 + self.limits.max_seq_gap:
                    message.seq_gap = message.seq - last - 1
                    self.gaps += message.seq_gap
                else:  # backwards, or a jump no real loss explains: a new publisher run
                    self.restarts += 1
                if message.epoch != self.epoch[stream]:
                    message.epoch_changed = True
                    self.epoch_changes += 1
            self.last_seq[stream] = message.seq
            self.epoch[stream] = message.epoch
        elif isinstance(message, EosMessage):
            last = self.last_seq.pop(stream, None)
            self.epoch.pop(stream, None)
            if last is not None:  # without a seg message we cannot tell loss from joining late
                gap = message.seq - last
                message.seq_gap = gap if 0 <= gap <= self.limits.max_seq_gap else 0
                self.gaps += message.seq_gap
            self.ended.add(stream)

    def recv(self, timeout_ms: int | None = 1000) -> Message | None:
        """The next message in arrival order, or None after timeout_ms (None = wait forever).

        A malformed message raises ProtocolError; the subscriber stays usable.
        """
        if not self._pending:
            item = self._receive_one(check_masks=True)
            if item is None and self._wait(timeout_ms):
                item = self._receive_one(check_masks=True)
            if item is None:
                return None
            self._pending.append(item)
        return self._pop()

    def recv_parts(self, timeout_ms: int | None = 1000) -> list[bytes] | None:
        """The next raw multipart message, undecoded and untracked (bridges, recorders, benchmarks)."""
        if not self._wait(timeout_ms):
            return None
        return self._socket.recv_multipart()

    def recv_latest(self, timeout_ms: int | None = 1000) -> Message | None:
        """Drain everything queued and return the newest seg message (drain-to-latest).

        Older seg messages of the same stream are skipped (counted in message.skipped, their
        seq_gap and epoch_changed carried over). With several streams, the newest of each is kept
        and returned by the next calls; status messages are likewise kept newest per stream; EOS
        is never skipped. A newer message takes its predecessor's place in the queue, so each
        topic keeps its turn: a consumer slower than the status rate still gets every other call's
        newest seg, instead of a status every time. Waits up to timeout_ms when nothing is
        queued; None if nothing came.
        """
        self._drain()
        if not self._pending:
            if not self._wait(timeout_ms):
                return None
            self._drain()
        return self._pop() if self._pending else None

    def _drain(self) -> None:
        for _ in range(_MAX_DRAIN):
            item = self._receive_one(check_masks=False)
            if item is None:
                return
            self._merge(item)

    def _merge(self, item: Message | ProtocolError) -> None:
        """Add a drained message to the pending list, replacing what it supersedes."""
        if isinstance(item, (SegMessage, StatusMessage)):
            for i, old in enumerate(self._pending):
                if type(old) is type(item) and old.stream == item.stream:
                    if isinstance(item, SegMessage):
                        item.seq_gap += old.seq_gap
                        item.skipped += old.skipped + 1
                        item.epoch_changed = item.epoch_changed or old.epoch_changed
                        self.skipped += 1
                    self._pending[i] = item  # its place in the queue: the topic keeps its turn
                    return
        self._pending.append(item)

    def _pop(self) -> Message:
        item = self._pending.pop(0)
        if isinstance(item, ProtocolError):
            raise item
        if isinstance(item, SegMessage):
            try:
                item.validate_masks()
            except ProtocolError:
                self.malformed += 1
                raise
        return item

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._socket.close(linger=0)

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
