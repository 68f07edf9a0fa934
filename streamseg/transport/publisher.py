"""The engine's end of the wire: one ZeroMQ XPUB socket carrying every stream's messages.

XPUB is PUB as far as subscribers and proxies can tell (the wire protocol is unchanged); it also
hands the engine the subscriptions peers send, so a file run can wait for its subscribers before
its first frame (ZeroMQ's slow joiner: a subscriber that connects just before a message misses
it, because its subscription has not reached the publisher yet). See :meth:`Publisher.subscribers`.

Publishing must never hold up the pipeline, so every send is non-blocking and the socket's queue
per subscriber is bounded by send_hwm. What happens at that bound is ZeroMQ's PUB rule: by default
(lossy) a subscriber whose queue is full simply misses messages — the others are unaffected and the
loss shows up at that subscriber as a seq gap. With nodrop=True (ZMQ_XPUB_NODROP) a full queue
makes the send fail instead: the message goes to nobody and is counted in `dropped`; the slowest
subscriber then sets the pace of losses for all.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Mapping, Sequence

import zmq

from streamseg.errors import ConfigError
from streamseg.interface import Frame, Tracks, Vocabulary
from streamseg.transport import protocol
from streamseg.transport.address import check_endpoint

MAX_TRACKED_PREFIXES = 10_000  # subscription prefixes counted; a peer cannot grow the table past it


class Publisher:
    """XPUB socket bound to `address` (tcp://host:port, tcp://host:* for a free port, ipc://path), or
    connected when the address starts with ">" (``>tcp://host:port``: a ``streamseg proxy``'s XSUB).

    Thread-safe: streams running in different threads may share one Publisher.
    """

    def __init__(self, address: str, send_hwm: int = 8, linger_ms: int = 200, nodrop: bool = False,
                 context: zmq.Context | None = None, curve: Any = None) -> None:
        """``curve``: a ``streamseg.transport.curve.CurveServer`` (only its admitted clients get anything)."""
        if send_hwm < 1:
            raise ConfigError(f"send_hwm must be >= 1, got {send_hwm}")
        check_endpoint(address)
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.XPUB)
        self._socket.setsockopt(zmq.SNDHWM, send_hwm)
        # Every subscribe and unsubscribe reaches us, duplicates too: one per subscriber and filter.
        self._socket.setsockopt(zmq.XPUB_VERBOSE, 1)
        self._socket.setsockopt(zmq.XPUB_VERBOSER, 1)
        self._socket.setsockopt(zmq.LINGER, linger_ms)
        if nodrop:
            self._socket.setsockopt(zmq.XPUB_NODROP, 1)
        if curve is not None:
            curve.make_server(self._socket)
        connect = address.startswith(">")  # ">tcp://proxy:6000": connect to a proxy's XSUB side
        try:
            if connect:
                self._socket.connect(address[1:])
            else:
                self._socket.bind(address)
        except zmq.ZMQError as exc:
            self._socket.close(linger=0)
            raise ConfigError(f"cannot {'connect' if connect else 'bind'} publisher to {address!r}: {exc}") from None
        self.address: str = address[1:] if connect else self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.send_hwm = send_hwm
        self.linger_ms = linger_ms
        self.sent = 0  # messages handed to ZeroMQ
        self.dropped = 0  # messages ZeroMQ refused at the high-water mark (nodrop=True only)
        self.last_encode_ms = 0.0
        self.last_send_ms = 0.0
        self.last_bytes = 0
        self._lock = threading.Lock()
        self._closed = False
        self._subscriptions: dict[bytes, int] = {}  # topic prefix -> subscribers holding it

    def _try_send(self, parts: Sequence[bytes]) -> bool | None:
        """True sent, False refused at the high-water mark, None closed."""
        with self._lock:
            if self._closed:
                return None
            try:
                self._socket.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return False
            self.sent += 1
            return True

    def send(self, parts: Sequence[bytes]) -> bool:
        """Queue one multipart message without blocking; False if it was dropped."""
        ok = self._try_send(parts)
        if ok is False:
            with self._lock:
                self.dropped += 1
        return bool(ok)

    def publish_seg(self, stream: str, seq: int, epoch: int, frame: Frame, tracks: Tracks,
                    vocab: Vocabulary, t_publish_ns: int | None = None) -> bool:
        """Encode and send one frame's tracks (see protocol.encode_seg).

        The cost of the two halves is kept in ``last_encode_ms`` / ``last_send_ms`` and the size in
        ``last_bytes`` (the engine's stage timings read them; one publishing thread).
        """
        t0 = time.perf_counter_ns()
        parts = protocol.encode_seg(stream, seq, epoch, frame, tracks, vocab, t_publish_ns)
        t1 = time.perf_counter_ns()
        ok = self.send(parts)
        self.last_encode_ms = (t1 - t0) / 1e6
        self.last_send_ms = (time.perf_counter_ns() - t1) / 1e6
        self.last_bytes = sum(len(p) for p in parts)
        return ok

    def subscribers(self, topic: bytes) -> int:
        """How many subscriptions now match ``topic`` (e.g. b"seg/cam"): one per subscriber and
        matching filter, so a subscriber with "seg/" and "" counts twice. Through a proxy
        (``>tcp://…``) the proxy forwards each distinct filter once: the count is then 0 or 1.
        """
        self._read_subscriptions()
        with self._lock:
            return sum(n for prefix, n in self._subscriptions.items() if topic.startswith(prefix))

    def wait_subscribers(self, n: int, topics: Sequence[bytes], timeout_s: float,
                         stop: Any = None, poll_s: float = 0.02) -> bool:
        """Block until every topic has ``n`` matching subscriptions; False after ``timeout_s`` or
        when ``stop()`` turns true (a signal handler's way to cut the wait short)."""
        deadline = time.monotonic() + timeout_s
        while True:
            if all(self.subscribers(t) >= n for t in topics):
                return True
            if time.monotonic() >= deadline or (stop is not None and stop()):
                return False
            with self._lock:
                if self._closed:
                    return False
                self._socket.poll(int(poll_s * 1000), zmq.POLLIN)

    def _read_subscriptions(self) -> None:
        """Drain the subscription messages XPUB queued (unread they would pile up all run long)."""
        with self._lock:
            while not self._closed:
                try:
                    message = self._socket.recv(zmq.NOBLOCK)
                except zmq.Again:
                    return
                if not message or message[0] not in (0, 1):
                    continue  # not a subscription: peers have nothing else to tell a publisher
                prefix, count = message[1:], self._subscriptions.get(message[1:], 0)
                if message[0] == 1 and (count or len(self._subscriptions) < MAX_TRACKED_PREFIXES):
                    self._subscriptions[prefix] = count + 1
                elif message[0] == 0 and count > 1:
                    self._subscriptions[prefix] = count - 1
                elif message[0] == 0:
                    self._subscriptions.pop(prefix, None)

    def publish_status(self, stream: str, status: Mapping[str, Any]) -> bool:
        """Send a status message; wire_dropped is filled from this publisher unless given."""
        self._read_subscriptions()
        fields = dict(status)
        fields.setdefault("wire_dropped", self.dropped)
        return self.send(protocol.encode_status(stream, fields))

    def publish_eos(self, stream: str, epoch: int, seq: int, reason: str) -> bool:
        """Send EOS; unlike frames it is worth a short wait (up to linger_ms) if the queue is full."""
        parts = protocol.encode_eos(stream, epoch, seq, reason)
        deadline = time.monotonic() + self.linger_ms / 1000
        while True:
            ok = self._try_send(parts)
            if ok is not False:
                return bool(ok)
            if time.monotonic() >= deadline:
                with self._lock:
                    self.dropped += 1
                return False
            time.sleep(0.005)

    def close(self, linger_ms: int | None = None) -> None:
        """Close the socket, giving queued messages up to linger_ms (default: the constructor's) to leave."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._socket.close(linger=self.linger_ms if linger_ms is None else linger_ms)

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
