"""``streamseg models``: the named models and whether each is in the cache already."""
from __future__ import annotations

import argparse
import json


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models", help="list the named models for --model (and whether each is cached)",
        description="Names usable as --model NAME on run, eval and bench model. A hub or URL model is "
        "downloaded into $STREAMSEG_CACHE/models/NAME/ (default ~/.cache/streamseg) on first use, "
        "imported once (`weights import`) and reused; $STREAMSEG_MODELS may name a YAML file of more "
        "entries; HF_ENDPOINT points hub downloads at a mirror.")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_list)


def _list(args: argparse.Namespace) -> int:
    from streamseg.models.fetch import checkpoint_path, is_cached
    from streamseg.models.registry import Registry

    for e in Registry.default().entries.values():
        cached = is_cached(e)
        source = e.repo_id if e.kind == "hub" else (e.config if e.kind == "shipped" else
                                                      ", ".join(f.url or "" for f in e.files))
        if args.json:
            print(json.dumps({"name": e.name, "kind": e.kind, "source": source, "cached": cached,
                              "checkpoint": None if e.kind == "shipped" else str(checkpoint_path(e.name)),
                              "description": e.description}))
        else:
            state = "shipped" if e.kind == "shipped" else ("cached" if cached else "not downloaded")
            print(f"{e.name:24s} {state:15s} {source}  - {e.description}")
    return 0
