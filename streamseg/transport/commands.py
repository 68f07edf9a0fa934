"""Sub-commands of the transport package (filled in by the transport work)."""
from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    pass
