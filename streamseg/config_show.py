"""``streamseg config show``: every setting, one line each, so ``--set`` is usable without the source.

Each line is ``section.field = value  # type — what it does``; the description is the field's own
comment in its section's dataclass (the one place settings are documented).
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import typing
from typing import Any

_FIELD_LINE = re.compile(r"^\s+(\w+)\s*:[^#]*?(?:#\s*(.*))?$")


def field_comments(cls: type) -> dict[str, str]:
    """field name -> the comment on its line in the class body (or the comment line just above it)."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    above = ""
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            above = (above + " " + stripped.lstrip("# ")).strip()
            continue
        m = _FIELD_LINE.match(line)
        if m and not stripped.startswith(("def ", "@", "class ", "return")):
            out[m.group(1)] = (m.group(2) or above).strip()
        above = ""
    return out


def _type_name(tp: Any) -> str:
    return re.sub(r"\b(typing|builtins)\.", "", tp.__name__ if isinstance(tp, type) else str(tp))


def config_lines(cfg: Any, prefix: str = "") -> list[str]:
    """One ``key = value  # type — description`` line per leaf field of ``cfg``, depth-first."""
    lines: list[str] = []
    hints = typing.get_type_hints(type(cfg))
    comments = field_comments(type(cfg))
    for f in dataclasses.fields(cfg):
        if f.metadata.get("internal"):
            continue
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            lines.extend(config_lines(value, f"{prefix}{f.name}."))
            continue
        shown = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else \
            "null" if value is None else str(value).lower() if isinstance(value, bool) else value
        doc = comments.get(f.name, "")
        lines.append(f"{prefix}{f.name} = {shown}  # {_type_name(hints[f.name])}" + (f" — {doc}" if doc else ""))
    return lines


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show every setting (for --set)")
    which = p.add_subparsers(dest="config_command", metavar="WHAT", required=True)
    show = which.add_parser("show", help="print every key as `section.field = value  # type — what it does`")
    show.add_argument("--config", default=None,
                      help="a config file or a shipped config's name (cpu-mobilenet, r50, ...); default: built-in defaults")
    show.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting first")
    show.set_defaults(func=_show)


def _show(args: argparse.Namespace) -> int:
    from streamseg.config import load_config

    cfg = load_config(args.config, args.set)
    for line in config_lines(cfg):
        print(line)
    return 0
