"""``streamseg weights import SRC -o OUT.pt``."""
from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("weights", help="import published Mask2Former weights")
    which = w.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    p = which.add_parser(
        "import", help="convert a transformers Mask2Former folder into a streamseg checkpoint",
        description="SRC: a transformers Mask2Former (Swin) folder with config.json and "
        "model.safetensors or pytorch_model.bin, as published on the model hub. The checkpoint "
        "carries its config and class names: `streamseg run --checkpoint OUT.pt` needs no --config.")
    p.add_argument("src")
    p.add_argument("-o", "--output", required=True, metavar="OUT.pt")
    p.add_argument("--short-side", type=int, default=480, help="model.input_short_side (default 480)")
    p.set_defaults(func=_import)


def _import(args: argparse.Namespace) -> int:
    from streamseg.weights_import.convert import import_transformers

    r = import_transformers(args.src, args.output, input_short_side=args.short_side)
    size = r.path.stat().st_size / 2**20
    print(f"wrote {r.path}: {len(r.names)} classes, {r.config.num_queries} queries, "
          f"{r.config.dec_layers} decoder layers, {size:.1f} MiB in {r.seconds:.1f} s; "
          f"new (initialised) tensors: {len(r.new_keys)}")
    return 0
