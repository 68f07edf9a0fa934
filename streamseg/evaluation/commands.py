"""Sub-commands of the evaluation package (filled in by the evaluation work)."""
from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    pass
