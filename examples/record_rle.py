"""Recorder: write every track's mask of every frame as one COCO-RLE JSON line.

    streamseg run --source synthetic:// --duration 60 &   # the demo engine, on tcp://127.0.0.1:5555
    python examples/record_rle.py tcp://127.0.0.1:5555 tracks.jsonl --count 30

Each line: {"stream", "seq", "frame_index", "epoch", "track_id", "class_id", "label", "score",
"box_xyxy", "segmentation": {"size": [h, w], "counts": "..."}} where segmentation is the full-frame
COCO compressed RLE (pycocotools.mask.decode reads it back). Stops at --count frames or EOS.
"""
import argparse
import json

import numpy as np
from pycocotools import mask as coco_mask

from streamseg.transport import Subscriber


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", help="engine publish address, e.g. tcp://127.0.0.1:5555")
    parser.add_argument("output", help="JSON-lines file to write")
    parser.add_argument("--count", type=int, default=0, help="stop after this many frames (0 = until EOS)")
    parser.add_argument("--timeout", type=float, default=10.0, help="give up after this many silent seconds")
    parser.add_argument("--curve", default=None, metavar="DIR",
                        help="CURVE client keys (client.key_secret, server.key) for a `run --curve` engine")
    args = parser.parse_args()

    frames = lines = 0
    with Subscriber(args.address, topics=("seg/", "eos/"), curve=args.curve) as sub, open(args.output, "w") as out:
        while not args.count or frames < args.count:
            msg = sub.recv(timeout_ms=int(args.timeout * 1000))
            if msg is None or msg.kind == "eos":
                break
            for inst in msg.instances:
                rle = coco_mask.encode(np.asfortranarray(inst.mask, dtype=np.uint8))
                out.write(json.dumps({
                    "stream": msg.stream, "seq": msg.seq, "frame_index": msg.frame_index,
                    "epoch": msg.epoch, "track_id": inst.id, "class_id": inst.class_id,
                    "label": inst.label, "score": inst.score, "box_xyxy": list(inst.box_xyxy),
                    "segmentation": {"size": [msg.height, msg.width], "counts": rle["counts"].decode()},
                }) + "\n")
                lines += 1
            frames += 1
    print(f"wrote {lines} masks from {frames} frames to {args.output}")


if __name__ == "__main__":
    main()
