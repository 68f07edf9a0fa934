"""The engine's end of the control socket: a ROUTER in its own thread.

Malformed requests are answered here and never reach the engine. A valid op first does its slow
part here (embedding names, opening a source), then hands the state change to the inference loop
(``Engine.call_soon``), which applies it between two frames and posts the reply back.
"""
from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Callable
from typing import Any

import zmq

from streamseg.control.protocol import ControlError, parse_request, reply_bytes
from streamseg.errors import ConfigError, StreamsegError
from streamseg.interface import Vocabulary
from streamseg.transport.address import check_endpoint

_POLL_MS = 100  # longest sleep; a reply from the loop wakes the thread at once (inproc wake socket)
_MAX_FRAMES = 8  # a ROUTER envelope is 2-3 frames; more is garbage


class ControlServer:
    def __init__(self, engine: Any, address: str, config: Any,
                 make_vocabulary: Callable[[list[str]], Vocabulary] | None = None,
                 context: zmq.Context | None = None, curve: Any = None) -> None:
        check_endpoint(address, "control address")
        self.engine = engine
        self.config = config
        self.make_vocabulary = make_vocabulary
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.ROUTER_MANDATORY, 0)
        if curve is not None:
            curve.make_server(self._socket)
        try:
            self._socket.bind(address)
        except zmq.ZMQError as exc:
            self._socket.close(linger=0)
            raise ConfigError(f"cannot bind control socket to {address!r}: {exc}") from None
        self.address: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._replies: queue.SimpleQueue[tuple[list[bytes], bytes]] = queue.SimpleQueue()
        self._wake_address = f"inproc://control-wake-{id(self)}"
        self._wake = self._context.socket(zmq.PULL)
        self._wake.setsockopt(zmq.LINGER, 0)
        self._wake.bind(self._wake_address)
        self._wakers = threading.local()  # one PUSH per posting thread (sockets are not thread-safe)
        self._waker_sockets: list[zmq.Socket] = []
        self._stop = threading.Event()
        self.requests = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._serve, daemon=True, name="control")

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self._socket.close(linger=0)
        self._wake.close(linger=0)
        for sock in self._waker_sockets:
            sock.close(linger=0)

    def _post(self, envelope: list[bytes], payload: bytes) -> None:
        """From the inference loop: queue a reply and wake the control thread."""
        self._replies.put((envelope, payload))
        push = getattr(self._wakers, "socket", None)
        if push is None:
            push = self._wakers.socket = self._context.socket(zmq.PUSH)
            push.setsockopt(zmq.LINGER, 0)
            push.connect(self._wake_address)
            self._waker_sockets.append(push)
        try:
            push.send(b"", zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the thread polls again within _POLL_MS anyway

    # ------------------------------------------------------------------ the thread
    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._wake, zmq.POLLIN)
        while not self._stop.is_set():
            ready = dict(poller.poll(_POLL_MS))
            if self._wake in ready:
                while True:
                    try:
                        self._wake.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
            if self._socket in ready:
                for _ in range(100):  # drain a burst, then look at replies again
                    try:
                        frames = self._socket.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._handle(frames)
            while True:
                try:
                    envelope, payload = self._replies.get_nowait()
                except queue.Empty:
                    break
                self._send(envelope, payload)

    def _send(self, envelope: list[bytes], payload: bytes) -> None:
        try:
            self._socket.send_multipart([*envelope, payload], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the client went away: nothing to tell

    def _handle(self, frames: list[bytes]) -> None:
        self.requests += 1
        if len(frames) < 2 or len(frames) > _MAX_FRAMES:
            self.errors += 1
            if frames:
                self._send(frames[:1], reply_bytes(None, False, error="request must be one frame"))
            return
        envelope, payload = frames[:-1], frames[-1]
        req_id = None
        try:
            req = parse_request(payload)
            req_id = req.get("id")
            op = req["op"]
            prepared = getattr(self, f"_prepare_{op}", lambda r: r)(req)
            apply = getattr(self, f"_op_{op}")
        except (ControlError, StreamsegError) as exc:
            self.errors += 1
            self._send(envelope, reply_bytes(req_id if req_id is not None else getattr(exc, "req_id", None),
                                             False, error=str(exc)))
            return
        if op == "get_config":
            self._send(envelope, reply_bytes(req_id, True, apply(prepared)))
            return

        def on_loop() -> None:  # runs on the inference loop, between frames
            try:
                body = apply(prepared)
                out = reply_bytes(req_id, True, body)
            except (ControlError, StreamsegError) as exc:
                out = reply_bytes(req_id, False, error=str(exc))
            except Exception as exc:  # a bug in an op must not take the engine down
                out = reply_bytes(req_id, False, error=f"{type(exc).__name__}: {exc}")
            self._post(envelope, out)

        self.engine.call_soon(on_loop)

    # ------------------------------------------------------------------ ops (prepare: this thread; _op_: loop)
    def _prepare_set_vocabulary(self, req: dict) -> dict:
        names, path = req.get("names"), req.get("file")
        if (names is None) == (path is None):
            raise ControlError("set_vocabulary: give exactly one of names or file")
        if path is not None:
            from streamseg.vocab.files import load_vocabulary

            req["vocabulary"] = load_vocabulary(path)
        else:
            if not names or not all(isinstance(n, str) and n.strip() for n in names):
                raise ControlError("set_vocabulary: names must be a non-empty list of non-empty strings")
            if self.make_vocabulary is None:
                raise ControlError("set_vocabulary: this engine has no text encoder for names; give file")
            req["vocabulary"] = self.make_vocabulary([n.strip() for n in names])
        return req

    def _op_set_vocabulary(self, req: dict) -> dict:
        vocab: Vocabulary = req["vocabulary"]
        streams = self.engine.set_vocabulary(vocab, req.get("stream"))
        return {"vocab_id": vocab.vocab_id, "names": list(vocab.names), "streams": streams}

    def _op_get_vocabulary(self, req: dict) -> dict:
        if req.get("stream") is not None:
            vocab = self.engine.stream(req["stream"]).vocabulary
        else:
            vocab = self.engine.vocabulary
        return {"vocab_id": vocab.vocab_id, "names": list(vocab.names), "encoder_id": vocab.encoder_id}

    def _targets(self, req: dict, method: str) -> Any:
        fn = getattr(self.engine.segmenter, method, None)
        if fn is None:
            raise ControlError(f"{req['op']}: not supported by this segmenter")
        return fn, self.engine.stream(req["stream"]).seg_state

    def _op_add_target(self, req: dict) -> dict:
        fn, state = self._targets(req, "add_target")
        prompt = {k: req[k] for k in ("points", "box", "mask") if k in req}
        if len(prompt) != 1:
            raise ControlError("add_target: give exactly one of points, box or mask")
        if "mask" in prompt:
            prompt["mask"] = _mask_from_wire(prompt["mask"])
        name = req.get("name", "target")
        if not isinstance(name, str) or not name:
            raise ControlError("add_target: name must be a non-empty string")
        return {"track_id": int(fn(state, **prompt, name=name))}

    def _op_remove_target(self, req: dict) -> dict:
        fn, state = self._targets(req, "remove_target")
        fn(state, req["track_id"])
        return {}

    def _op_list_targets(self, req: dict) -> dict:
        fn, state = self._targets(req, "list_targets")
        return {"targets": [t.as_dict() if hasattr(t, "as_dict") else t for t in fn(state)]}

    def _streams(self, req: dict) -> list[Any]:
        if req.get("stream") is not None:
            return [self.engine.stream(req["stream"])]
        return self.engine.active_streams()

    def _op_list_tracks(self, req: dict) -> dict:
        out = {}
        for st in self._streams(req):
            t = st.last_tracks
            out[st.spec.stream_id] = [] if t is None else [
                {"id": i.track_id, "class_id": i.class_id, "label": i.label, "score": round(i.score, 4),
                 "box_xyxy": [float(v) for v in i.box_xyxy]} for i in t.instances]
        return {"tracks": out}

    def _op_pause(self, req: dict) -> dict:
        streams = self._streams(req)
        for st in streams:
            st.paused = True
        return {"streams": [st.spec.stream_id for st in streams]}

    def _op_resume(self, req: dict) -> dict:
        streams = self._streams(req)
        for st in streams:
            st.paused = False
        return {"streams": [st.spec.stream_id for st in streams]}

    def _prepare_add_source(self, req: dict) -> dict:
        from streamseg.engine.build import check_stream_id
        from streamseg.engine.pipeline import StreamSpec
        from streamseg.sources import open_source

        sid = check_stream_id(req.get("stream") or f"s{self.requests}")
        req["spec"] = StreamSpec(stream_id=sid, source=open_source(req["uri"], self.config.source))
        return req

    def _op_add_source(self, req: dict) -> dict:
        try:
            self.engine.add_stream(req["spec"])
        except StreamsegError:
            req["spec"].source.close()
            raise
        return {"stream": req["spec"].stream_id}

    def _op_remove_source(self, req: dict) -> dict:
        self.engine.remove_stream(req["stream"])
        return {"stream": req["stream"]}

    def _op_get_status(self, req: dict) -> dict:
        wanted = {st.spec.stream_id for st in self._streams(req)}
        return {"streams": [dataclasses.asdict(s) for s in self.engine.statuses() if s.stream in wanted]}

    def _op_get_config(self, req: dict) -> dict:
        from streamseg.config import config_to_dict

        return {"config": config_to_dict(self.config)}


def _mask_from_wire(value: Any) -> Any:
    """A mask prompt as sent over the bus: COCO RLE ``{"size": [h, w], "counts": bytes|str}``
    (checked by the project's own parser first, so a malformed one cannot hang pycocotools)."""
    from streamseg.errors import ProtocolError
    from streamseg.transport.rle import parse_counts

    if not isinstance(value, dict) or "size" not in value or "counts" not in value:
        raise ControlError('add_target: mask must be a COCO RLE map {"size": [h, w], "counts": ...}')
    size, counts = value["size"], value["counts"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and 0 < v <= 16384 for v in size)):
        raise ControlError("add_target: mask size must be [height, width], each 1..16384")
    if isinstance(counts, str):
        counts = counts.encode("ascii", "replace")
    if not isinstance(counts, bytes):
        raise ControlError("add_target: mask counts must be the COCO compressed RLE string")
    from pycocotools import mask as mask_utils

    try:
        parse_counts(counts, int(size[0]), int(size[1]))
    except ProtocolError as exc:  # the parser's own one-line reason
        raise ControlError(f"add_target: mask counts are not a valid RLE of that size ({exc})") from None
    return mask_utils.decode({"size": [int(size[0]), int(size[1])], "counts": counts}).astype(bool)
