"""Which model a command runs when the user names none, and the guard against untrained weights.

With no ``--config``, ``run``, ``eval`` and ``bench model`` use the shipped CPU model (a trained
checkpoint beside the package), so the first command a newcomer types finds something. A model
with no checkpoint at all has random weights and finds nothing: that takes ``--untrained``, and
says so in one line, instead of silently exiting 0 with empty output.
"""
from __future__ import annotations

import sys
from typing import Any

from streamseg.config import Config
from streamseg.errors import ConfigError

DEFAULT_CONFIG = "cpu-mobilenet"  # configs/cpu-mobilenet.yaml: the shipped, trained CPU model

UNTRAINED_HELP = ("allow a model with no checkpoint (random weights; it finds nothing useful), e.g. "
                  "with --config tiny-test for plumbing tests")


def config_name(given: str | None) -> str:
    """The config a model command loads: the one given, else the shipped CPU model's."""
    return given if given is not None else DEFAULT_CONFIG


def check_trained(config: Config, checkpoint: str | None, untrained: bool, config_label: str) -> None:
    """Refuse (one-line error) or warn (one line on stderr) when no checkpoint would be loaded."""
    if checkpoint or config.checkpoint:
        return
    if not untrained:
        raise ConfigError(f"config {config_label} names no checkpoint, so the model would be untrained: "
                          "give --checkpoint FILE, a config with a checkpoint (the default "
                          f"'{DEFAULT_CONFIG}' has one), or --untrained to run random weights anyway")
    print("streamseg: warning: running an untrained model (no checkpoint): expect no useful detections",
          file=sys.stderr, flush=True)


MODEL_HELP = ("a named model (`streamseg models` lists them: mask2former-swin-t-coco, ..., "
              "cpu-mobilenet-synth), downloaded into $STREAMSEG_CACHE and imported on first use")


def apply_model(args: Any) -> None:
    """``--model NAME`` -> ``args.checkpoint`` (the imported .pt, fetched on first use) or, for
    the shipped model, ``args.config``. Nothing changes without --model."""
    name = getattr(args, "model", None)
    if not name:
        return
    if getattr(args, "checkpoint", None):
        raise ConfigError("--model and --checkpoint both name weights: give one of them")
    from streamseg.models.fetch import resolve_model

    resolved = resolve_model(name)
    if resolved.checkpoint is None:
        if getattr(args, "config", None) is not None:
            raise ConfigError(f"--model {name} is the shipped config '{resolved.config}': drop --config")
        args.config = resolved.config
        return
    args.checkpoint = resolved.checkpoint
    if resolved.downloaded:
        print(f"streamseg: model {name}: downloaded and imported into {resolved.checkpoint}",
              file=sys.stderr, flush=True)
