"""The ``streamseg data`` command: dataset utilities (the synthetic benchmark writer)."""
from __future__ import annotations

import argparse
import sys


def add_data_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="dataset utilities (write the synthetic YouTube-VIS benchmark)")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    s = data_sub.add_parser(
        "synth",
        help="write a YouTube-VIS-format synthetic dataset (JPEG frames + JSON with RLE masks)",
        description="Render videos of the synthetic scene into DIR/JPEGImages and write DIR/train.json "
        "(or DIR/train_1..K.json with --split K, taxonomies that differ but overlap) plus DIR/valid.json "
        "with held-out videos.",
    )
    s.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    s.add_argument("--videos", type=int, default=40, metavar="N", help="training videos per training dataset (default 40)")
    s.add_argument("--val-videos", type=int, default=8, metavar="M", help="held-out videos in valid.json (default 8; 0 = none)")
    s.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the whole benchmark (default 0)")
    s.add_argument("--frames", type=int, default=24, metavar="T", help="frames per video (default 24)")
    s.add_argument("--width", type=int, default=320, metavar="W", help="frame width (default 320)")
    s.add_argument("--height", type=int, default=192, metavar="H", help="frame height (default 192)")
    s.add_argument("--instances", type=int, default=5, metavar="N", help="objects in view at once (default 5)")
    s.add_argument("--frame-step", type=int, default=3, metavar="STEP", help="scene frames between video frames (default 3)")
    s.add_argument(
        "--split", type=int, default=1, choices=(1, 2, 3), metavar="K",
        help="number of training datasets with overlapping taxonomies (1, 2 or 3; default 1)",
    )
    s.set_defaults(func=_synth)


def _synth(args: argparse.Namespace) -> int:
    from streamseg.data.synth import SynthSpec, write_synthetic

    spec = SynthSpec(
        out=args.out, videos=args.videos, seed=args.seed, frames=args.frames, width=args.width,
        height=args.height, split=args.split, val_videos=args.val_videos, instances=args.instances,
        frame_step=args.frame_step,
    )
    write_synthetic(spec, progress=lambda msg: print(msg, file=sys.stderr))
    return 0
