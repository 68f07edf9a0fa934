"""``streamseg.Controller``: the Python client of the control socket (a DEALER, so a lost reply
never wedges it the way a REQ socket would)."""
from __future__ import annotations

import itertools
import time
from typing import Any

import msgpack
import zmq

from streamseg.control.protocol import CONTROL_VERSION, ControlError


class Controller:
    def __init__(self, address: str, timeout_s: float = 5.0, context: zmq.Context | None = None,
                 curve: Any = None) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._socket = (context or zmq.Context.instance()).socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:  # a key folder or a CurveClient
            from streamseg.transport.curve import curve_client

            client = curve_client(curve)
            if client is not None:
                client.make_client(self._socket)
        self._socket.connect(address)
        self._ids = itertools.count(1)

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return the reply map (``ok`` false included); TimeoutError if none."""
        req_id = next(self._ids)
        body = {k: v for k, v in fields.items() if v is not None}
        self._socket.send_multipart([b"", msgpack.packb({"v": CONTROL_VERSION, "op": op, "id": req_id, **body})])
        deadline = time.monotonic() + self.timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._socket.poll(int(left * 1000) + 1, zmq.POLLIN):
                raise TimeoutError(f"no reply from {self.address} within {self.timeout_s:g} s")
            reply = msgpack.unpackb(self._socket.recv_multipart()[-1], raw=False)
            if isinstance(reply, dict) and reply.get("id") == req_id:
                return reply

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """Like request, but an ``ok: false`` reply raises ControlError with its error line."""
        reply = self.request(op, **fields)
        if not reply.get("ok"):
            raise ControlError(str(reply.get("error")))
        return reply

    def set_vocabulary(self, names: list[str] | None = None, file: str | None = None,
                       stream: str | None = None) -> dict[str, Any]:
        return self.call("set_vocabulary", names=names, file=file, stream=stream)

    def get_vocabulary(self, stream: str | None = None) -> dict[str, Any]:
        return self.call("get_vocabulary", stream=stream)

    def list_tracks(self, stream: str | None = None) -> dict[str, Any]:
        return self.call("list_tracks", stream=stream)["tracks"]

    def pause(self, stream: str | None = None) -> dict[str, Any]:
        return self.call("pause", stream=stream)

    def resume(self, stream: str | None = None) -> dict[str, Any]:
        return self.call("resume", stream=stream)

    def add_source(self, uri: str, stream: str | None = None) -> str:
        return self.call("add_source", uri=uri, stream=stream)["stream"]

    def remove_source(self, stream: str) -> dict[str, Any]:
        return self.call("remove_source", stream=stream)

    def get_status(self, stream: str | None = None) -> list[dict[str, Any]]:
        return self.call("get_status", stream=stream)["streams"]

    def get_config(self) -> dict[str, Any]:
        return self.call("get_config")["config"]

    def add_target(self, stream: str, points: list | None = None, box: list | None = None,
                   mask: dict | None = None, name: str | None = None) -> int:
        return int(self.call("add_target", stream=stream, points=points, box=box, mask=mask, name=name)["track_id"])

    def remove_target(self, stream: str, track_id: int) -> dict[str, Any]:
        return self.call("remove_target", stream=stream, track_id=track_id)

    def list_targets(self, stream: str) -> list[Any]:
        return self.call("list_targets", stream=stream)["targets"]

    def close(self) -> None:
        self._socket.close(linger=0)

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
