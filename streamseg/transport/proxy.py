"""``streamseg proxy``: ZeroMQ's built-in XSUB/XPUB proxy, so many engines publish into one
address and many subscribers read it. Engines *connect* their PUB to the XSUB side
(``--publish`` then names the proxy's address and the engine binds nothing)… see docs/protocol.md.
"""
from __future__ import annotations

import threading
from typing import Any

import zmq

from streamseg.errors import ConfigError
from streamseg.transport.address import check_endpoint


class Proxy:
    """XSUB bound on ``xsub`` (engines connect PUB sockets to it), XPUB bound on ``xpub``.

    Runs ``zmq.proxy`` in a thread; a capture socket counts forwarded messages for metrics.
    ``curve``: a CurveServer applied to both sides.
    """

    def __init__(self, xsub: str, xpub: str, curve: Any = None, context: zmq.Context | None = None) -> None:
        check_endpoint(xsub, "proxy XSUB address")
        check_endpoint(xpub, "proxy XPUB address")
        self._context = context or zmq.Context.instance()
        self._front = self._context.socket(zmq.XSUB)
        self._back = self._context.socket(zmq.XPUB)
        self._capture = self._context.socket(zmq.PUSH)
        self._counter = self._context.socket(zmq.PULL)
        for s in (self._front, self._back, self._capture, self._counter):
            s.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            curve.make_server(self._front)
            curve.make_server(self._back)
        try:
            self._front.bind(xsub)
            self._back.bind(xpub)
        except zmq.ZMQError as exc:
            self._close_sockets()
            raise ConfigError(f"cannot bind proxy to {xsub!r} / {xpub!r}: {exc}") from None
        self._ctl_in = self._context.socket(zmq.PAIR)
        self._ctl_out = self._context.socket(zmq.PAIR)
        ctl = f"inproc://proxy-control-{id(self)}"
        self._ctl_in.bind(ctl)
        self._ctl_out.connect(ctl)
        cap = f"inproc://proxy-capture-{id(self)}"
        self._counter.bind(cap)
        self._capture.connect(cap)
        self.xsub_address = self._front.getsockopt_string(zmq.LAST_ENDPOINT)
        self.xpub_address = self._back.getsockopt_string(zmq.LAST_ENDPOINT)
        self.forwarded = 0  # messages engine -> subscribers (multipart messages, by the capture)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="proxy")
        self._count_thread = threading.Thread(target=self._count, daemon=True, name="proxy-count")

    def start(self) -> Proxy:
        self._thread.start()
        self._count_thread.start()
        return self

    def _run(self) -> None:
        try:
            zmq.proxy_steerable(self._front, self._back, self._capture, self._ctl_in)
        except zmq.ZMQError:
            pass  # context terminated: the proxy ends
        finally:
            for sock in (self._front, self._back, self._capture, self._ctl_in):
                sock.close(linger=0)

    def _count(self) -> None:
        """Owns the counting socket (closed here: a socket must not be closed under another thread)."""
        try:
            while not self._stopping.is_set():
                if not self._counter.poll(100):
                    continue
                parts = self._counter.recv_multipart()
                if parts and parts[0][:1] not in (b"\x00", b"\x01"):  # skip subscriptions going upstream
                    self.forwarded += 1
        except zmq.ZMQError:
            pass
        finally:
            self._counter.close(linger=0)

    def _close_sockets(self) -> None:
        for s in (self._front, self._back, self._capture, self._counter):
            s.close(linger=0)

    def close(self) -> None:
        """Stop the proxy (TERMINATE on its control socket) and close every socket."""
        if self._thread.is_alive():
            self._ctl_out.send(b"TERMINATE")
            self._thread.join(timeout=2.0)
        else:
            for sock in (self._front, self._back, self._capture, self._ctl_in):
                sock.close(linger=0)
        self._ctl_out.close(linger=0)
        self._stopping.set()
        if self._count_thread.is_alive():
            self._count_thread.join(timeout=2.0)
        else:
            self._counter.close(linger=0)
