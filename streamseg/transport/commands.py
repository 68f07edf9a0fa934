"""``streamseg subscribe``: print what a publisher sends, one line per message.

Imports only the transport (zmq, msgpack, numpy, pycocotools): no torch, so it starts fast.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from streamseg.transport.messages import EosMessage, Message, SegMessage, StatusMessage

DEFAULT_TIMEOUT_S = 30.0  # a publisher that is not there is reported, not waited on forever
_POLL_MS = 200  # longest single wait, so Ctrl-C and deadlines are noticed promptly


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "subscribe",
        help="print the messages of one or more streamseg publishers",
        description="Connect to streamseg publishers and print one line per message "
        "(seg, status, eos). Exits 0 after --count seg messages or, with --until-eos, when every "
        "stream seen has ended; exits 1 with a one-line error when --timeout passes with no message "
        "before that. A malformed message is skipped with a one-line warning on stderr (counted in "
        "the closing 'skipped N malformed message(s)' line); it never stops the subscriber.",
    )
    p.add_argument("addresses", nargs="+", metavar="ADDR", help="publisher address, e.g. tcp://127.0.0.1:5555")
    p.add_argument("--count", type=int, default=None, metavar="N", help="stop after N seg messages")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a compact summary")
    p.add_argument("--topic", action="append", default=None, metavar="PREFIX",
                   help="topic prefix to subscribe to, e.g. seg/ or seg/cam0 (repeatable; default: all)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"give up when no message arrives for S seconds (default: {DEFAULT_TIMEOUT_S:g}; "
                   "0 = wait forever)")
    p.add_argument("--until-eos", action="store_true", help="stop when every stream seen has sent EOS")
    p.add_argument("--curve", default=None, metavar="DIR",
                   help="CURVE key folder (client.key_secret, server.key) for a `run --curve` publisher")
    p.add_argument("--latest", action="store_true",
                   help="drain-to-latest: skip queued seg messages, print only the newest of each stream")
    p.set_defaults(func=run_subscribe)


def message_record(message: Message, now_ns: int | None = None) -> dict[str, Any]:
    """The JSON-able summary of a message that `streamseg subscribe --json` prints."""
    if isinstance(message, SegMessage):
        return {
            "type": "seg",
            "stream": message.stream,
            "seq": message.seq,
            "epoch": message.epoch,
            "frame_index": message.frame_index,
            "pts": message.pts,
            "age_ms": round(message.age_ms(now_ns), 3),
            "width": message.width,
            "height": message.height,
            "seq_gap": message.seq_gap,
            "skipped": message.skipped,
            "epoch_changed": message.epoch_changed,
            "vocab_id": message.vocab_id,
            "instances": [
                {
                    "id": inst.id,
                    "class_id": inst.class_id,
                    "label": inst.label,
                    "score": round(inst.score, 4),
                    "box_xyxy": [round(v, 2) for v in inst.box_xyxy],
                    "mask_box": list(inst.mask_box),
                    "area": inst.area,
                    **({"target": True} if inst.target else {}),
                }
                for inst in message.instances
            ],
        }
    if isinstance(message, StatusMessage):
        return {
            "type": "status",
            "stream": message.stream,
            "epoch": message.epoch,
            "state": message.state,
            "fps_in": message.fps_in,
            "fps_out": message.fps_out,
            "dropped": message.dropped,
            "wire_dropped": message.wire_dropped,
            "frames_in": message.frames_in,
            "frames_out": message.frames_out,
            "error": message.error,
            "latency_ms": message.latency_ms,
        }
    return {"type": "eos", "stream": message.stream, "epoch": message.epoch, "seq": message.seq,
            "reason": message.reason, "seq_gap": message.seq_gap}


def message_line(message: Message, now_ns: int | None = None) -> str:
    """A compact one-line human summary."""
    if isinstance(message, SegMessage):
        flags = (f" gap={message.seq_gap}" if message.seq_gap else "") + (" EPOCH" if message.epoch_changed else "")
        items = " ".join(f"#{i.id}:{i.label}:{i.score:.2f}:{i.area}px" for i in message.instances)
        return (f"seg {message.stream} seq={message.seq} epoch={message.epoch} frame={message.frame_index} "
                f"age={message.age_ms(now_ns):.1f}ms n={len(message.instances)}{flags} {items}").rstrip()
    if isinstance(message, StatusMessage):
        lat = " ".join(f"{k}={v['p50']:.1f}/{v['p95']:.1f}" for k, v in message.latency_ms.items())
        return (f"status {message.stream} {message.state} epoch={message.epoch} in={message.fps_in:.1f}fps "
                f"out={message.fps_out:.1f}fps dropped={message.dropped} {lat}").rstrip()
    if not isinstance(message, EosMessage):
        raise TypeError(f"not a protocol message: {type(message).__name__}")
    return f"eos {message.stream} epoch={message.epoch} seq={message.seq} reason={message.reason}"


_WARN_FIRST = 10  # malformed messages warned about one by one; after that every 100th


def _receive(receive: Any, subscriber: Any) -> Message | None:
    """One message, or None; a malformed one is reported on stderr and skipped (returns None)."""
    from streamseg.errors import ProtocolError

    try:
        return receive(_POLL_MS)
    except ProtocolError as exc:
        n = subscriber.malformed
        if n <= _WARN_FIRST or n % 100 == 0:
            print(f"streamseg: warning: skipped malformed message #{n}: {exc}", file=sys.stderr, flush=True)
        return None


def run_subscribe(args: argparse.Namespace) -> int:
    from streamseg.transport.subscriber import DEFAULT_TOPICS, Subscriber

    if args.count is not None and args.count < 1:
        print("streamseg: error: --count must be >= 1", file=sys.stderr)
        return 2
    if args.timeout is not None and args.timeout < 0:
        print("streamseg: error: --timeout must be >= 0", file=sys.stderr)
        return 2
    if args.timeout == 0:
        args.timeout = None
    topics = args.topic or list(DEFAULT_TOPICS)
    what = f"{args.count} seg message(s)" if args.count else "every stream's EOS" if args.until_eos else "messages"
    patience = f"up to {args.timeout:g} s of silence" if args.timeout else "no timeout"
    print(f"streamseg subscribe: waiting for {what} from {', '.join(args.addresses)} "
          f"(topics: {', '.join(topics)}; {patience}; Ctrl-C to stop)", file=sys.stderr, flush=True)
    with Subscriber(args.addresses, topics=topics, curve=args.curve) as subscriber:
        try:
            return _subscribe_loop(args, subscriber)
        except BrokenPipeError:  # e.g. piped into `head`
            sys.stderr.close()
            return 0
        finally:
            if subscriber.malformed and not sys.stderr.closed:
                print(f"streamseg: skipped {subscriber.malformed} malformed message(s)", file=sys.stderr, flush=True)


def _subscribe_loop(args: argparse.Namespace, subscriber: Any) -> int:
    seg_count = 0
    streams: set[str] = set()
    last_arrival = time.monotonic()
    receive = subscriber.recv_latest if args.latest else subscriber.recv
    while True:
        n_bad = subscriber.malformed
        message = _receive(receive, subscriber)
        if subscriber.malformed != n_bad:
            last_arrival = time.monotonic()  # something did arrive, just not a valid message
            continue
        if message is None:
            if args.timeout is not None and time.monotonic() - last_arrival >= args.timeout:
                return _timed_out(args, subscriber.received, seg_count)
            continue
        last_arrival = time.monotonic()
        now_ns = time.time_ns()
        text = json.dumps(message_record(message, now_ns)) if args.json else message_line(message, now_ns)
        print(text, flush=True)
        streams.add(message.stream)
        if isinstance(message, SegMessage):
            seg_count += 1
            if args.count is not None and seg_count >= args.count:
                return 0
        if args.until_eos and streams and streams <= subscriber.ended:
            return 0


def _timed_out(args: argparse.Namespace, received: int, seg_count: int) -> int:
    where = " ".join(args.addresses)
    if received == 0:
        print(f"streamseg: error: no message from {where} within {args.timeout:g} s", file=sys.stderr)
        return 1
    if args.count is not None or args.until_eos:
        wanted = f"{args.count} seg messages" if args.count is not None else "EOS on every stream"
        print(f"streamseg: error: no message for {args.timeout:g} s after {seg_count} seg message(s); "
              f"wanted {wanted}", file=sys.stderr)
        return 1
    return 0
