"""The ``streamseg`` command. Thin: each package's ``commands`` module adds its sub-commands."""
from __future__ import annotations

import argparse
import sys

from streamseg.errors import StreamsegError


def build_parser() -> argparse.ArgumentParser:
    # Imported here, not at module level, so `streamseg --help` stays fast.
    from streamseg import config_show
    from streamseg.bench import commands as bench_commands
    from streamseg.control import commands as control_commands
    from streamseg.engine import commands as engine_commands
    from streamseg.evaluation import commands as eval_commands
    from streamseg.models import commands as models_commands
    from streamseg.training import commands as train_commands
    from streamseg.transport import commands as transport_commands
    from streamseg.transport import proxy_commands
    from streamseg.vocab import commands as vocab_commands
    from streamseg.weights_import import commands as weights_commands

    parser = argparse.ArgumentParser(
        prog="streamseg",
        description="Streaming online video instance segmentation: live video in, "
        "tracked instance masks out over ZeroMQ.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    engine_commands.add_parsers(sub)  # run
    transport_commands.add_parsers(sub)  # subscribe
    control_commands.add_parsers(sub)  # control, keys
    proxy_commands.add_parsers(sub)  # proxy
    vocab_commands.add_parsers(sub)  # vocab
    train_commands.add_parsers(sub)  # train, data
    eval_commands.add_parsers(sub)  # eval, eval-json
    bench_commands.add_parsers(sub)  # bench engine|model|kernels
    config_show.add_parsers(sub)  # config show
    weights_commands.add_parsers(sub)  # weights import
    models_commands.add_parsers(sub)  # models
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except StreamsegError as exc:
        print(f"streamseg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
