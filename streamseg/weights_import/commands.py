"""``streamseg weights import SRC -o OUT.pt``, ``weights export CKPT -o OUT.pt`` and ``weights average``."""
from __future__ import annotations

import argparse
from pathlib import Path

from streamseg.weights_import.class_names import DATASETS


def add_parsers(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("weights", help="import published Mask2Former weights; export or average training checkpoints")
    which = w.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    p = which.add_parser(
        "import", help="convert a transformers folder or a detectron2 .pkl/.pth into a streamseg checkpoint",
        description="SRC: a transformers Mask2Former (Swin) folder with config.json and "
        "model.safetensors or pytorch_model.bin, as published on the model hub; or an original "
        "detectron2 Mask2Former / MinVIS checkpoint (.pkl, read without running code from it, or "
        ".pth, loaded with weights_only=True) with a ResNet-50 or Swin backbone, whose sizes are read "
        "from the tensor shapes and whose class names come from --classes. The checkpoint carries "
        "its config and class names: `streamseg run --checkpoint OUT.pt` needs no --config.")
    p.add_argument("src", metavar="SRC")
    p.add_argument("-o", "--output", required=True, metavar="OUT.pt")
    p.add_argument("--short-side", type=int, default=480, help="model.input_short_side (default 480)")
    p.add_argument("--classes", choices=list(DATASETS),
                   help="detectron2 checkpoints: the dataset the class head was trained on (default: "
                        "coco for 80 classes, ovis for 25; YouTube-VIS's 40 need ytvis19 or ytvis21)")
    p.add_argument("--heads", type=int, default=8,
                   help="detectron2 checkpoints: attention heads (MODEL.MASK_FORMER.NHEADS, default 8; "
                        "not recorded in the tensor shapes)")
    p.set_defaults(func=_import)
    e = which.add_parser(
        "export", help="a training checkpoint (e.g. a run's step_N.pt) without its resume state, for inference",
        description="Writes CKPT without the optimiser, scheduler and RNG states that only `train "
        "--resume` reads (about two thirds of a step checkpoint's size): weights, config and "
        "vocabulary stay, so OUT.pt runs wherever CKPT did (`run|eval --checkpoint OUT.pt`). "
        "The file is checked like any checkpoint first and written atomically.")
    e.add_argument("checkpoint", metavar="CKPT")
    e.add_argument("-o", "--output", required=True, metavar="OUT.pt")
    e.set_defaults(func=_export)
    a = which.add_parser(
        "average", help="the mean of checkpoints of one model (successive fine-tunes: a model soup)",
        description="Writes the element-wise mean of the weights of CKPT... (at least two, all of one "
        "model: the same tensors, shapes and vocabulary; integer counters and the config come from "
        "the first), without resume state. Checkpoints along one training path average into a model "
        "that scores about as well as their best or better; unrelated runs do not.")
    a.add_argument("checkpoints", nargs="+", metavar="CKPT")
    a.add_argument("-o", "--output", required=True, metavar="OUT.pt")
    a.set_defaults(func=_average)


def _import(args: argparse.Namespace) -> int:
    from streamseg.weights_import.convert import import_detectron2, import_transformers

    if Path(args.src).is_dir():
        r = import_transformers(args.src, args.output, input_short_side=args.short_side)
    else:
        r = import_detectron2(args.src, args.output, classes=args.classes, heads=args.heads,
                              input_short_side=args.short_side)
    size = r.path.stat().st_size / 2**20
    backbone = "Swin" if r.config.backbone == "swin" else "ResNet-50"
    print(f"wrote {r.path}: {backbone}, {len(r.names)} classes, {r.config.num_queries} queries, "
          f"{r.config.dec_layers} decoder layers, {size:.1f} MiB in {r.seconds:.1f} s; "
          f"new (initialised) tensors: {len(r.new_keys)}")
    return 0


def _average(args: argparse.Namespace) -> int:
    from streamseg.predictor.checkpoint_average import average_checkpoints

    n = average_checkpoints(args.checkpoints, args.output)
    print(f"wrote {args.output}: the mean of {len(args.checkpoints)} checkpoints ({n} tensors averaged)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from streamseg.predictor.checkpoint import export_for_inference

    before = Path(args.checkpoint).stat().st_size if Path(args.checkpoint).is_file() else 0
    dropped = export_for_inference(args.checkpoint, args.output)
    after = Path(args.output).stat().st_size
    left_out = ", ".join(dropped) if dropped else "nothing (it held no resume state)"
    print(f"wrote {args.output}: {after / 2**20:.1f} MiB from {before / 2**20:.1f} MiB; left out {left_out}")
    return 0
