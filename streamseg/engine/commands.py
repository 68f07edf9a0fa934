"""Sub-commands of the engine package (filled in by the engine work)."""
from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    pass
