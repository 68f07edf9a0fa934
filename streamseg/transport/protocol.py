"""Protocol v1 on the wire: multipart ZeroMQ messages of topic, msgpack header and mask parts.

    part 0  topic   b"seg/<stream>" | b"status/<stream>" | b"eos/<stream>"
    part 1  header  msgpack map (field tables in docs/protocol.md)
    part 2… masks   seg only: one per instance, the COCO RLE counts of its mask_box crop

Everything arriving is untrusted: decode() checks every field it reads and raises a one-line
ProtocolError, so a subscriber never crashes inside numpy or pycocotools on a bad message.
Decoders ignore header keys they do not know (v1 may grow optional fields); a breaking change
bumps `v`.
"""
from __future__ import annotations

import math
import time
from typing import Any, Mapping, Sequence

import msgpack

from streamseg.errors import ProtocolError
from streamseg.interface import Frame, Tracks, Vocabulary
from streamseg.transport import rle
from streamseg.transport.limits import DEFAULT_LIMITS, INT64_MAX, ProtocolLimits
from streamseg.transport.messages import EosMessage, Message, SegInstance, SegMessage, StatusMessage

PROTOCOL_VERSION = 1
SEG, STATUS, EOS = "seg", "status", "eos"
KINDS = (SEG, STATUS, EOS)
STATES = ("connecting", "connected", "reconnecting", "paused", "ended")
MASK_PART_OFFSET = 2  # instance i's mask travels in part 2 + i

_STATUS_REQUIRED = ("state", "fps_in", "fps_out", "dropped", "latency_ms", "epoch")
_STATUS_OPTIONAL = ("wire_dropped", "t_publish_ns", "frames_in", "frames_out", "error")


def topic(kind: str, stream: str) -> bytes:
    """The topic frame of a message of `kind` on `stream`."""
    if kind not in KINDS:
        raise ProtocolError(f"unknown message kind {kind!r} (expected one of {', '.join(KINDS)})")
    if not stream or any(ch.isspace() or not ch.isprintable() for ch in stream):
        raise ProtocolError(f"stream id {stream!r} must be non-empty printable text without spaces")
    return f"{kind}/{stream}".encode()


def _pack(header: dict[str, Any]) -> bytes:
    return msgpack.packb(header, use_bin_type=True)


def encode_seg(stream: str, seq: int, epoch: int, frame: Frame, tracks: Tracks, vocab: Vocabulary,
               t_publish_ns: int | None = None) -> list[bytes]:
    """One frame's tracks -> [topic, header, mask parts…]. t_publish_ns defaults to now, taken
    after the masks are encoded so it marks the moment the message is ready to leave."""
    height, width = frame.height, frame.width
    instances: list[dict[str, Any]] = []
    masks: list[bytes] = []
    for i, inst in enumerate(tracks.instances):
        x, y, w, h = (int(v) for v in inst.mask_box)
        if inst.crop.shape != (h, w) or x < 0 or y < 0 or x + w > width or y + h > height:
            raise ProtocolError(f"instance {inst.track_id}: mask crop {tuple(inst.crop.shape)} at mask_box "
                                f"{tuple(inst.mask_box)} does not fit the {width}x{height} frame")
        score, box_xyxy = float(inst.score), [float(v) for v in inst.box_xyxy]
        if len(box_xyxy) != 4 or not all(math.isfinite(v) for v in (score, *box_xyxy)):
            raise ProtocolError(f"instance {inst.track_id}: score and box_xyxy must be finite, box 4 numbers")
        masks.append(rle.encode_crop(inst.crop))
        instances.append({
            "id": int(inst.track_id),
            "class_id": int(inst.class_id),
            "label": str(inst.label),
            "score": score,
            "box_xyxy": box_xyxy,
            "mask_part": MASK_PART_OFFSET + i,
            "mask_box": [x, y, w, h],
        })
        if getattr(inst, "target", False):
            instances[-1]["target"] = True  # additive v1 field: a prompted target, not a class
    header = {
        "v": PROTOCOL_VERSION,
        "stream": stream,
        "epoch": int(epoch),
        "seq": int(seq),
        "frame_index": int(frame.index),
        "pts": None if frame.pts is None else float(frame.pts),
        "t_capture_ns": int(frame.t_capture_ns),
        "t_publish_ns": int(time.time_ns() if t_publish_ns is None else t_publish_ns),
        "width": width,
        "height": height,
        "vocab": {"id": vocab.vocab_id, "names": list(vocab.names)},
        "instances": instances,
    }
    return [topic(SEG, stream), _pack(header), *masks]


def _latency_entry(stage: str, value: Any) -> dict[str, float]:
    if isinstance(value, Mapping):
        p50, p95 = value.get("p50"), value.get("p95")
    elif isinstance(value, Sequence) and len(value) == 2:
        p50, p95 = value
    else:
        raise ProtocolError(f"status latency_ms[{stage!r}] must be {{'p50': ms, 'p95': ms}} or (p50, p95)")
    try:
        return {"p50": float(p50), "p95": float(p95)}  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ProtocolError(f"status latency_ms[{stage!r}] values must be numbers") from None


def encode_status(stream: str, status: Mapping[str, Any]) -> list[bytes]:
    """status dict (state, fps_in, fps_out, dropped, latency_ms {stage: (p50, p95)}, epoch;
    optional wire_dropped, t_publish_ns, frames_in, frames_out, error) -> [topic, header]."""
    missing = [k for k in _STATUS_REQUIRED if k not in status]
    if missing:
        raise ProtocolError(f"status is missing {', '.join(missing)}")
    unknown = [k for k in status if k not in _STATUS_REQUIRED + _STATUS_OPTIONAL]
    if unknown:
        raise ProtocolError(f"status has unknown field(s) {', '.join(map(str, unknown))}")
    if status["state"] not in STATES:
        raise ProtocolError(f"status state {status['state']!r} is not one of {', '.join(STATES)}")
    header = {
        "v": PROTOCOL_VERSION,
        "stream": stream,
        "epoch": int(status["epoch"]),
        "t_publish_ns": int(status.get("t_publish_ns") or time.time_ns()),
        "state": status["state"],
        "fps_in": float(status["fps_in"]),
        "fps_out": float(status["fps_out"]),
        "dropped": int(status["dropped"]),
        "latency_ms": {str(k): _latency_entry(str(k), v) for k, v in dict(status["latency_ms"]).items()},
        "wire_dropped": int(status.get("wire_dropped", 0)),
    }
    for key in ("frames_in", "frames_out"):
        if status.get(key) is not None:
            header[key] = int(status[key])
    if status.get("error"):
        header["error"] = str(status["error"])
    return [topic(STATUS, stream), _pack(header)]


def encode_eos(stream: str, epoch: int, seq: int, reason: str, t_publish_ns: int | None = None) -> list[bytes]:
    """End of stream -> [topic, header]. seq = the last seg seq published (-1 if none)."""
    header = {
        "v": PROTOCOL_VERSION,
        "stream": stream,
        "epoch": int(epoch),
        "seq": int(seq),
        "reason": str(reason),
        "t_publish_ns": int(time.time_ns() if t_publish_ns is None else t_publish_ns),
    }
    return [topic(EOS, stream), _pack(header)]


# ---------------------------------------------------------------- decoding


def _get(mapping: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    if key not in mapping:
        raise ProtocolError(f"{where} has no {key!r}")
    value = mapping[key]
    if isinstance(value, bool) or not isinstance(value, types):
        names = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        raise ProtocolError(f"{where} field {key!r} must be {names}, got {type(value).__name__}")
    return value


def _flag(mapping: Mapping[str, Any], key: str, where: str) -> bool:
    """An optional boolean field (absent = False)."""
    value = mapping.get(key, False)
    if not isinstance(value, bool):
        raise ProtocolError(f"{where} field {key!r} must be bool, got {type(value).__name__}")
    return value


def _number(mapping: Mapping[str, Any], key: str, where: str, low: float = -math.inf,
            high: float = math.inf) -> float:
    value = float(_get(mapping, key, (int, float), where))
    if not math.isfinite(value):
        raise ProtocolError(f"{where} field {key!r} must be finite")
    if not low <= value <= high:
        raise ProtocolError(f"{where} field {key!r} = {value:g} is outside [{low:g}, {high:g}]")
    return value


def _int(mapping: Mapping[str, Any], key: str, where: str, low: int = 0, high: int = INT64_MAX) -> int:
    """An integer field within [low, high] (default: a non-negative int64)."""
    value = _get(mapping, key, int, where)
    if not low <= value <= high:
        raise ProtocolError(f"{where} field {key!r} = {value} is outside [{low}, {high}]")
    return value


def _split_topic(part: bytes) -> tuple[str, str]:
    try:
        text = bytes(part).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("topic is not UTF-8") from None
    kind, sep, stream = text.partition("/")
    if not sep or kind not in KINDS or not stream:
        raise ProtocolError(f"topic {text[:60]!r} is not seg/<stream>, status/<stream> or eos/<stream>")
    return kind, stream


def decode_header(parts: Sequence[bytes], limits: ProtocolLimits = DEFAULT_LIMITS) -> tuple[str, str, dict[str, Any]]:
    """(kind, stream, header) after checking the topic, msgpack framing, version and stream."""
    if len(parts) < 2:
        raise ProtocolError(f"message has {len(parts)} part(s); protocol v1 needs topic and header")
    if len(parts) > MASK_PART_OFFSET + limits.max_instances:
        raise ProtocolError(f"message has {len(parts)} parts, more than {limits.max_instances} instances allow")
    if len(parts[0]) > 1024 or len(parts[1]) > limits.max_part_bytes:
        raise ProtocolError(f"topic or header larger than the limit ({limits.max_part_bytes} bytes)")
    kind, stream = _split_topic(parts[0])
    try:
        header = msgpack.unpackb(bytes(parts[1]), raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise ProtocolError(f"{kind}/{stream}: header is not valid msgpack ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"{kind}/{stream}: header is a msgpack {type(header).__name__}, not a map")
    version = header.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:  # not true, not 1.0
        raise ProtocolError(f"{kind}/{stream}: protocol version {version!r} is not supported (this reader speaks v1)")
    if header.get("stream") != stream:
        raise ProtocolError(f"{kind}/{stream}: header stream {header.get('stream')!r} does not match the topic")
    return kind, stream, header


def _decode_instance(item: Any, index: int, parts: Sequence[bytes], width: int, height: int,
                     names: list[str], where: str, limits: ProtocolLimits) -> SegInstance:
    where = f"{where} instance {index}"
    if not isinstance(item, dict):
        raise ProtocolError(f"{where} is not a map")
    box = _get(item, "box_xyxy", list, where)
    mask_box = _get(item, "mask_box", list, where)
    if len(box) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
        raise ProtocolError(f"{where} box_xyxy must be 4 numbers")
    if not all(math.isfinite(v) for v in box):
        raise ProtocolError(f"{where} box_xyxy must be finite")
    if len(mask_box) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) for v in mask_box):
        raise ProtocolError(f"{where} mask_box must be 4 integers [x, y, w, h]")
    x, y, w, h = mask_box
    if x < 0 or y < 0 or w < 0 or h < 0 or x + w > width or y + h > height:
        raise ProtocolError(f"{where} mask_box {mask_box} is not inside the {width}x{height} frame")
    part = _get(item, "mask_part", int, where)
    if not MASK_PART_OFFSET <= part < len(parts):
        raise ProtocolError(f"{where} mask_part {part} is not a part of this {len(parts)}-part message")
    if len(parts[part]) > limits.max_part_bytes:
        raise ProtocolError(f"{where} mask part is larger than the limit ({limits.max_part_bytes} bytes)")
    if len(parts[part]) > 8 * (w * h + 1):  # a valid string has at most w*h+1 runs of <= 7 chars
        raise ProtocolError(f"{where} mask part is longer than any RLE of a {w}x{h} box")
    target = _flag(item, "target", where)
    if target:  # a prompted target: class_id -1, its label is the name the user gave
        class_id = _int(item, "class_id", where, -1, -1)
    else:
        class_id = _int(item, "class_id", where, 0, len(names) - 1) if names else _int(item, "class_id", where)
    label = _get(item, "label", str, where)
    if names and not target and label != names[class_id]:
        raise ProtocolError(f"{where} label {label[:40]!r} is not vocab name {class_id} ({names[class_id][:40]!r})")
    return SegInstance(
        id=_int(item, "id", where),
        class_id=class_id,
        label=label,
        score=_number(item, "score", where, 0.0, 1.0),
        box_xyxy=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
        mask_box=(x, y, w, h),
        counts=bytes(parts[part]),
        frame_height=height,
        frame_width=width,
        target=target,
    )


def _decode_seg(stream: str, header: dict[str, Any], parts: Sequence[bytes], limits: ProtocolLimits) -> SegMessage:
    where = f"seg/{stream}"
    width = _get(header, "width", int, where)
    height = _get(header, "height", int, where)
    if width <= 0 or height <= 0:
        raise ProtocolError(f"{where}: frame size {width}x{height} must be positive")
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise ProtocolError(f"{where}: frame size {width}x{height} exceeds the limit "
                            f"({limits.max_side} px a side, {limits.max_pixels} px in all)")
    vocab = _get(header, "vocab", dict, where)
    names = _get(vocab, "names", list, f"{where} vocab")
    if len(names) > limits.max_names or not all(isinstance(n, str) for n in names):
        raise ProtocolError(f"{where} vocab names must be at most {limits.max_names} strings")
    items = _get(header, "instances", list, where)
    if len(parts) != MASK_PART_OFFSET + len(items):
        raise ProtocolError(f"{where}: {len(items)} instance(s) but {len(parts) - MASK_PART_OFFSET} mask part(s)")
    pts = header.get("pts")
    if pts is not None and (isinstance(pts, bool) or not isinstance(pts, (int, float)) or not math.isfinite(pts)):
        raise ProtocolError(f"{where} field 'pts' must be a finite number or nil")
    instances = [_decode_instance(item, i, parts, width, height, names, where, limits)
                 for i, item in enumerate(items)]
    used = [inst_item["mask_part"] for inst_item in items]
    if len(set(used)) != len(used):
        raise ProtocolError(f"{where}: two instances share one mask part")
    return SegMessage(
        stream=stream,
        epoch=_int(header, "epoch", where),
        seq=_int(header, "seq", where),
        frame_index=_int(header, "frame_index", where),
        pts=None if pts is None else float(pts),
        t_capture_ns=_int(header, "t_capture_ns", where),
        t_publish_ns=_int(header, "t_publish_ns", where),
        width=width,
        height=height,
        vocab_id=_get(vocab, "id", str, f"{where} vocab"),
        vocab_names=list(names),
        instances=instances,
    )


def _decode_status(stream: str, header: dict[str, Any]) -> StatusMessage:
    where = f"status/{stream}"
    state = _get(header, "state", str, where)
    if state not in STATES:
        raise ProtocolError(f"{where}: state {state!r} is not one of {', '.join(STATES)}")
    latency: dict[str, dict[str, float]] = {}
    for stage, entry in _get(header, "latency_ms", dict, where).items():
        if not isinstance(entry, dict):
            raise ProtocolError(f"{where} latency_ms[{stage!r}] is not a map")
        if not isinstance(stage, str) or len(latency) >= 256:
            raise ProtocolError(f"{where} latency_ms must map at most 256 stage names to maps")
        latency[stage] = {"p50": _number(entry, "p50", f"{where} latency_ms[{stage!r}]"),
                          "p95": _number(entry, "p95", f"{where} latency_ms[{stage!r}]")}
    return StatusMessage(
        stream=stream,
        epoch=_int(header, "epoch", where),
        t_publish_ns=_int(header, "t_publish_ns", where),
        state=state,
        fps_in=_number(header, "fps_in", where, 0.0),
        fps_out=_number(header, "fps_out", where, 0.0),
        dropped=_int(header, "dropped", where),
        latency_ms=latency,
        wire_dropped=_int(header, "wire_dropped", where) if "wire_dropped" in header else 0,
        frames_in=_int(header, "frames_in", where) if "frames_in" in header else None,
        frames_out=_int(header, "frames_out", where) if "frames_out" in header else None,
        error=_get(header, "error", str, where) if "error" in header else None,
    )


def _decode_eos(stream: str, header: dict[str, Any]) -> EosMessage:
    where = f"eos/{stream}"
    return EosMessage(
        stream=stream,
        epoch=_int(header, "epoch", where),
        seq=_int(header, "seq", where, low=-1),
        reason=_get(header, "reason", str, where),
        t_publish_ns=_int(header, "t_publish_ns", where),
    )


def decode(parts: Sequence[bytes], check_masks: bool = True, limits: ProtocolLimits = DEFAULT_LIMITS) -> Message:
    """[topic, header, masks…] -> SegMessage | StatusMessage | EosMessage, or ProtocolError.

    check_masks=False defers the RLE checks to the first access of an instance's mask or area
    (Subscriber.recv_latest uses it for messages it may skip). `limits` bound the frame size,
    mask boxes, part sizes and instance count, checked before anything is allocated.
    """
    kind, stream, header = decode_header(parts, limits)
    if kind == SEG:
        message = _decode_seg(stream, header, parts, limits)
        if check_masks:
            message.validate_masks()
        return message
    if len(parts) != 2:
        raise ProtocolError(f"{kind}/{stream}: has {len(parts)} parts, expected 2")
    if kind == STATUS:
        return _decode_status(stream, header)
    return _decode_eos(stream, header)
