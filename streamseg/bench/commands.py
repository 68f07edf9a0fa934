"""``streamseg bench engine|model|kernels``: benchmarks that print figures (never assertions)."""
from __future__ import annotations

import argparse

from streamseg.predictor.model_choice import MODEL_HELP


def add_parsers(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="measure speed and memory; prints figures")
    which = bench.add_subparsers(dest="bench", metavar="WHAT", required=True)

    p = which.add_parser("engine", help="engine overhead per frame with the ground-truth test double")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--instances", type=int, default=10)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_engine)

    p = which.add_parser("model", help="segmenter frames/s, per-component ms, memory")
    p.add_argument("--config", default=None, metavar="NAME|FILE",
                   help="model config, a file or a shipped config's name (default: cpu-mobilenet)")
    p.add_argument("--untrained", action="store_true",
                   help="allow a config with no checkpoint (random weights: the speed is real, the output is not)")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--sizes", default="640x360,1280x720", help="comma-separated WxH source sizes")
    p.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="weights; an imported checkpoint (`streamseg weights import`) brings its own config")
    p.add_argument("--model", default=None, metavar="NAME", help=MODEL_HELP)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override one config field, e.g. --set model.input_short_side=360 (repeatable)")
    p.add_argument("--soak", type=int, default=0, help="also run N frames and report RSS after 1000 and N")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch CPU threads (default: the config's model.threads; 0 = half the cores, at least 1)")
    p.add_argument("--speedups", default=None, metavar="C1,C2,...",
                   help="compare inference speed-up choices (none, int8, compile, no_channels_last, onnx, onnx_decoder; "
                   "combine with +, e.g. none,int8,int8+compile): interleaved, ratio to the first")
    p.add_argument("--targets", default=None, metavar="N1,N2,...",
                   help="also measure with N prompted targets per stream (e.g. 0,1,3), each count run "
                   "interleaved with the others in 5 rounds on the first size (at least 40 frames per count "
                   "and round, more with --frames); the fps cost of each count against the first is the "
                   "median of the rounds, with their range")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_model)

    p = which.add_parser("control", help="control round trip under full load, vocabulary swap, CURVE cost at 720p")
    p.add_argument("--requests", type=int, default=300, metavar="N", help="control round trips to time")
    p.add_argument("--swaps", type=int, default=10, metavar="N", help="vocabulary swaps to time")
    p.add_argument("--messages", type=int, default=300, metavar="N", help="720p messages per CURVE setting")
    p.set_defaults(func=_control)

    p = which.add_parser("kernels", help="Triton masked attention vs SDPA vs naive (needs CUDA)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_kernels)


def _engine(args: argparse.Namespace) -> int:
    from streamseg.bench.engine import main

    return main(args)


def _model(args: argparse.Namespace) -> int:
    from streamseg.bench.model import main

    return main(args)


def _control(args: argparse.Namespace) -> int:
    from streamseg.bench.control import main

    return main(args.requests, args.swaps, args.messages)


def _kernels(args: argparse.Namespace) -> int:
    from streamseg.bench.kernels import main

    return main(json_output=args.json)
