"""Sub-commands of the training package: `streamseg train` (and `streamseg data`, from data_commands)."""
from __future__ import annotations

import argparse
import sys

from streamseg.data.commands import add_data_parser


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the model on YouTube-VIS-format datasets (single process, or DDP under torchrun)",
        description="Train OnlineVIS on one or more YouTube-VIS-format datasets, jointly over their "
        "unified taxonomy. Writes OUT/model.pt (final weights), OUT/last.pt and OUT/step_*.pt (with "
        "optimizer state, for --resume) and the JSON-lines log (losses, steps/s, wall and CPU seconds of the run). For several processes run "
        "`torchrun --nproc_per_node N -m streamseg train ...` (gloo on CPU, NCCL on GPUs).",
    )
    p.add_argument("--config", required=True, metavar="YAML", help="config file (model + train sections)")
    p.add_argument("--data", action="append", default=None, metavar="DIR",
                   help="a dataset (folder or its JSON file), or synth://?seed=S[&videos=N&...] for the "
                   "synthetic benchmark's training videos rendered as they are drawn (the videos `data synth "
                   "--seed S` writes; keys as its options; default a million videos); repeat for joint training "
                   "(default: train.datasets of the config)")
    p.add_argument("--ratios", default=None, metavar="R1,R2,...",
                   help="sampling ratio per --data, e.g. 1,1,0.75 (default: train.ratios, else by dataset as the "
                   "paper: YouTube-VIS 1, UVO 1, OVIS 0.75, recognised from the path; others 1)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder for checkpoints and the log (default: runs/<config name>)")
    p.add_argument("--steps", type=int, default=None, metavar="N", help="total steps (overrides train.steps)")
    p.add_argument("--max-minutes", type=float, default=None, metavar="M",
                   help="stop after M minutes of training (checkpoints are written as at the end)")
    p.add_argument("--resume", default=None, metavar="CKPT",
                   help="continue from a checkpoint written by train (step_*.pt or last.pt)")
    p.add_argument("--init", default=None, metavar="CKPT",
                   help="start from the weights of CKPT that fit the model (name and shape), e.g. a VIS "
                   "model gaining the target encoder; the optimiser starts fresh at step 0")
    p.add_argument("--eval-data", default=None, metavar="DIR",
                   help="held-out dataset scored online (AP) every --eval-every steps and at the end; "
                   "logged and drawn in OUT/ap.png (sets train.eval_data)")
    p.add_argument("--eval-every", type=int, default=None, metavar="N",
                   help="steps between held-out evaluations (train.eval_every, default 500)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch CPU threads per process (default 1: it does not collapse when other work shares the cores)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.lr=0.0003 (repeatable)")
    p.set_defaults(func=_train)
    add_data_parser(sub)


def _parse_ratios(text: str | None) -> list[float] | None:
    from streamseg.errors import ConfigError

    if text is None:
        return None
    try:
        ratios = [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise ConfigError(f"--ratios must be comma-separated numbers, got {text!r}") from None
    if not ratios or any(r <= 0 for r in ratios):
        raise ConfigError(f"--ratios must be positive numbers, got {text!r}")
    return ratios


def _train(args: argparse.Namespace) -> int:
    from streamseg.training.run import run_training

    result = run_training(
        config_path=args.config, overrides=args.set, data=args.data, ratios=_parse_ratios(args.ratios),
        out=args.out, steps=args.steps, resume=args.resume, device=args.device,
        progress=not args.no_progress, threads=args.threads,
        max_minutes=args.max_minutes, init=args.init, eval_data=args.eval_data, eval_every=args.eval_every,
    )
    if result is not None:
        first = f"{result.first_loss:.4f}" if result.first_loss is not None else "-"
        last = f"{result.last_loss:.4f}" if result.last_loss is not None else "-"
        print(f"trained {result.step} steps in {result.seconds:.1f} s ({result.cpu_seconds / 60:.1f} CPU-minutes); "
              f"loss {first} -> {last}; "
              f"model {result.checkpoint}; log {result.log}", file=sys.stderr)
        if not result.ranks_in_sync:
            print("streamseg: error: the DDP ranks ended with different weights", file=sys.stderr)
            return 1
    return 0
