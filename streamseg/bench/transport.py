"""Transport figures: message size, encode/decode time, PUB->SUB latency on loopback.

    python -m streamseg.bench.transport [--width 1280 --height 720 --instances 10 --json]

`realistic_tracks` gives the frames it measures (smooth blobs of assorted sizes, as a segmenter's
upsampled masks are); `streamseg bench engine` can reuse `measure_codec`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.interface import Frame, Instance, Tracks, Vocabulary
from streamseg.transport.protocol import decode, encode_seg

SHAPES = ("person", "car", "ring", "box", "blob")


def realistic_mask(height: int, width: int, rng: np.random.Generator, kind: str) -> np.ndarray:
    """One object mask: size 1-25 % of the frame height squared, possibly cut by a border."""
    size = rng.uniform(0.08, 0.5) * height
    cx, cy = rng.uniform(-0.05, 1.05) * width, rng.uniform(0.0, 1.0) * height
    yy, xx = np.ogrid[:height, :width]
    dx, dy = xx - cx, yy - cy
    angle = rng.uniform(0, np.pi)
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    if kind == "person":  # tall ellipse with a head
        mask = (dx / (0.22 * size)) ** 2 + (dy / (0.5 * size)) ** 2 <= 1
        mask |= dx ** 2 + (dy + 0.62 * size) ** 2 <= (0.14 * size) ** 2
    elif kind == "car":  # wide rounded box
        mask = (np.abs(dx) <= 0.6 * size) & (np.abs(dy) <= 0.25 * size)
        mask &= (np.abs(dx) <= 0.5 * size) | (np.abs(dy) <= 0.15 * size)
    elif kind == "ring":
        r2 = dx ** 2 + dy ** 2
        mask = (r2 <= (0.4 * size) ** 2) & (r2 >= (0.25 * size) ** 2)
    elif kind == "box":  # rotated rectangle
        mask = (np.abs(u) <= 0.4 * size) & (np.abs(v) <= 0.25 * size)
    else:  # wobbly blob: radius modulated by angle
        theta = np.arctan2(dy, dx)
        radius = 0.35 * size * (1 + 0.25 * np.sin(3 * theta + angle) + 0.1 * np.cos(7 * theta))
        mask = dx ** 2 + dy ** 2 <= radius ** 2
    return np.ascontiguousarray(mask)


def realistic_tracks(width: int = 1280, height: int = 720, instances: int = 10, seed: int = 0,
                     index: int = 0) -> tuple[Frame, Tracks, Vocabulary]:
    """A frame with `instances` tracked objects of assorted shapes (never empty)."""
    rng = np.random.default_rng(seed)
    vocab = Vocabulary(list(SHAPES))
    items: list[Instance] = []
    while len(items) < instances:
        class_id = len(items) % len(SHAPES)
        mask = realistic_mask(height, width, rng, SHAPES[class_id])
        inst = Instance.from_mask(len(items) + 1, class_id, SHAPES[class_id], float(rng.uniform(0.3, 1)), mask)
        if inst is not None:
            items.append(inst)
    frame = Frame(np.zeros((height, width, 3), np.uint8), index, index / 30, time.time_ns())
    return frame, Tracks(index, width, height, items), vocab


def measure_codec(width: int = 1280, height: int = 720, instances: int = 10, frames: int = 5,
                  repeats: int = 10) -> dict[str, float]:
    """Median bytes per message, encode ms and decode ms (incl. full-frame masks) over `frames` scenes."""
    sizes, encode_ms, decode_ms = [], [], []
    for seed in range(frames):
        frame, tracks, vocab = realistic_tracks(width, height, instances, seed)
        for _ in range(repeats):
            t0 = time.perf_counter()
            parts = encode_seg("bench", 0, 0, frame, tracks, vocab)
            t1 = time.perf_counter()
            message = decode(parts)
            for inst in getattr(message, "instances", []):
                _ = inst.mask
            t2 = time.perf_counter()
            encode_ms.append((t1 - t0) * 1e3)
            decode_ms.append((t2 - t1) * 1e3)
        sizes.append(sum(len(p) for p in parts))
    return {
        "bytes_per_message_p50": statistics.median(sizes),
        "bytes_per_message_max": max(sizes),
        "encode_ms_p50": statistics.median(encode_ms),
        "decode_ms_p50": statistics.median(decode_ms),
    }


def measure_latency(address: str, messages: int = 200, width: int = 1280, height: int = 720,
                    instances: int = 10) -> dict[str, float]:
    """PUB->SUB one-way time of a full seg message (send to receipt, masks not decoded), median ms."""
    from streamseg.transport.publisher import Publisher
    from streamseg.transport.subscriber import Subscriber

    frame, tracks, vocab = realistic_tracks(width, height, instances)
    parts = encode_seg("bench", 0, 0, frame, tracks, vocab)
    with Publisher(address, send_hwm=100) as pub, Subscriber(pub.address, topics=("seg/",)) as sub:
        deadline = time.monotonic() + 5
        while sub.recv(10) is None:  # PUB/SUB slow joiner: wait until the subscription is in place
            if time.monotonic() > deadline:
                raise RuntimeError(f"no subscription on {pub.address} after 5 s")
            pub.send(parts)
        while sub.recv(50) is not None:
            pass
        times = []
        for _ in range(messages):
            t0 = time.perf_counter()
            pub.send(parts)
            if sub.recv_parts(1000) is not None:  # receipt only: decoding is measured apart
                times.append((time.perf_counter() - t0) * 1e3)
    return {"latency_ms_p50": statistics.median(times), "latency_ms_p95": float(np.percentile(times, 95)),
            "bytes": sum(len(p) for p in parts)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamseg.bench.transport", description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--messages", type=int, default=200, help="messages timed for PUB->SUB latency")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"width": args.width, "height": args.height, "instances": args.instances}
    result["codec"] = measure_codec(args.width, args.height, args.instances)
    with tempfile.TemporaryDirectory() as tmp:
        result["tcp"] = measure_latency("tcp://127.0.0.1:*", args.messages, args.width, args.height, args.instances)
        result["ipc"] = measure_latency(f"ipc://{Path(tmp) / 'bench.ipc'}", args.messages, args.width,
                                        args.height, args.instances)
    result["empty_frame_tcp"] = measure_latency("tcp://127.0.0.1:*", args.messages, 64, 64, 0)
    if args.json:
        print(json.dumps(result))
    else:
        c = result["codec"]
        print(f"{args.width}x{args.height}, {args.instances} instances: {c['bytes_per_message_p50']:.0f} B/message "
              f"(max {c['bytes_per_message_max']}), encode {c['encode_ms_p50']:.2f} ms, "
              f"decode+masks {c['decode_ms_p50']:.2f} ms (medians)")
        for key in ("tcp", "ipc", "empty_frame_tcp"):
            r = result[key]
            print(f"PUB->SUB {key}: {r['bytes']} B, p50 {r['latency_ms_p50']:.3f} ms, p95 {r['latency_ms_p95']:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
