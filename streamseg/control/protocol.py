"""Control protocol v1: msgpack maps over ROUTER/DEALER. Validation only (no sockets, no engine).

Request ``{"v": 1, "op": str, "id": (optional, echoed), ...fields}``; reply ``{"ok": true, ...}`` or
``{"ok": false, "error": "<one line>"}``. Each op's fields and their types are listed in ``OPS``;
anything else in a request is an error, so a typo never passes silently.
"""
from __future__ import annotations

from typing import Any

import msgpack

CONTROL_VERSION = 1
MAX_REQUEST_BYTES = 1 << 20  # a vocabulary of thousands of names fits; a flood of garbage does not

# op -> {field: (type or tuple of types, required)}
_STREAM = {"stream": (str, False)}
OPS: dict[str, dict[str, tuple[Any, bool]]] = {
    "set_vocabulary": {"names": (list, False), "file": (str, False), **_STREAM},
    "get_vocabulary": dict(_STREAM),
    "add_target": {"stream": (str, True), "points": (list, False), "box": (list, False),
                   "mask": (dict, False), "name": (str, False)},
    "remove_target": {"stream": (str, True), "track_id": (int, True)},
    "list_targets": {"stream": (str, True)},
    "list_tracks": dict(_STREAM),
    "pause": dict(_STREAM),
    "resume": dict(_STREAM),
    "add_source": {"uri": (str, True), "stream": (str, False)},
    "remove_source": {"stream": (str, True)},
    "get_status": dict(_STREAM),
    "get_config": {},
}


class ControlError(Exception):
    """A request the engine refuses; its text is the reply's one-line error."""

    req_id: Any = None  # the request's id when it could be read (echoed in the error reply)


def parse_request(payload: bytes) -> dict[str, Any]:
    """Decode and check one request; ControlError naming the problem otherwise."""
    try:
        return _parse(payload)
    except ControlError as exc:
        exc.req_id = _id_of(payload)
        raise


def _id_of(payload: bytes) -> Any:
    try:
        req = msgpack.unpackb(payload, raw=False)
    except Exception:
        return None
    rid = req.get("id") if isinstance(req, dict) else None
    return rid if isinstance(rid, (int, str)) and not isinstance(rid, bool) else None


def _parse(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_REQUEST_BYTES:
        raise ControlError(f"request of {len(payload)} bytes exceeds {MAX_REQUEST_BYTES}")
    try:
        req = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several types for garbage
        raise ControlError(f"request is not msgpack ({type(exc).__name__})") from None
    if not isinstance(req, dict):
        raise ControlError("request must be a msgpack map")
    if req.get("v") != CONTROL_VERSION:
        raise ControlError(f"unsupported control version {req.get('v')!r} (this engine speaks v={CONTROL_VERSION})")
    op = req.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise ControlError(f"unknown op {op!r} (expected one of {', '.join(OPS)})")
    if "id" in req and not isinstance(req["id"], (int, str)) or isinstance(req.get("id"), bool):
        raise ControlError("id must be an integer or a string")
    fields = OPS[op]
    for key, value in req.items():
        if key in ("v", "op", "id"):
            continue
        if key not in fields:
            raise ControlError(f"{op}: unknown field {key!r} (expected {', '.join(fields) or 'none'})")
        tp = fields[key][0]
        if not isinstance(value, tp) or isinstance(value, bool):
            raise ControlError(f"{op}: field {key!r} must be {tp.__name__}, got {type(value).__name__}")
    for key, (_, required) in fields.items():
        if required and key not in req:
            raise ControlError(f"{op}: field {key!r} is required")
    return req


def reply_bytes(req_id: Any, ok: bool, body: dict[str, Any] | None = None, error: str | None = None) -> bytes:
    out: dict[str, Any] = {"ok": ok}
    if req_id is not None:
        out["id"] = req_id
    if ok:
        out.update(body or {})
    else:
        out["error"] = (error or "error").splitlines()[0] if error else "error"
    return msgpack.packb(out, use_bin_type=True)
