"""Typed query parameters of source URIs (``synthetic://?seed=1&fps=30``), checked strictly.

A typo in a parameter must fail loudly at open time rather than silently use a default.
"""
from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import parse_qsl

from streamseg.errors import SourceError


def parse_params(uri: str, query: str, spec: Mapping[str, type], defaults: dict[str, Any]) -> dict[str, Any]:
    """Values of ``query`` converted by ``spec``; unknown names and bad values raise SourceError."""
    out = dict(defaults)
    for name, raw in parse_qsl(query, keep_blank_values=True):
        if name not in spec:
            raise SourceError(f"unknown parameter '{name}' in {uri} (expected one of: {', '.join(spec)})")
        kind = spec[name]
        try:
            if kind is bool:
                if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(raw)
                out[name] = raw.lower() in ("1", "true", "yes")
            else:
                out[name] = kind(raw)
        except ValueError:
            raise SourceError(f"bad value '{raw}' for parameter '{name}' in {uri} (expected {kind.__name__})") from None
    return out


def require_positive(uri: str, params: dict[str, Any], *names: str) -> None:
    for name in names:
        value = params.get(name)
        if value is not None and value <= 0:
            raise SourceError(f"parameter '{name}' must be > 0 in {uri}")


MAX_SIDE = 8192  # generated frames: 8192x8192 RGB is 200 MB; 100000x100000 tried to allocate 37 GiB


def require_frame_size(uri: str, params: dict[str, Any], low: int = 1) -> None:
    """Bound the width and height a generated source allocates frames of."""
    if not (low <= params["width"] <= MAX_SIDE and low <= params["height"] <= MAX_SIDE):
        raise SourceError(f"width and height must be in [{low}, {MAX_SIDE}] in {uri}, "
                          f"got {params['width']}x{params['height']}")
