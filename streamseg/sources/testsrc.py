"""testsrc:// — GStreamer videotestsrc as a live camera stand-in (PyAV's lavfi testsrc2 as fallback).

Machines without a camera still exercise the whole live path: pacing, dropping, reconnect loop.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from streamseg.errors import SourceError
from streamseg.sources.base import SourceOptions
from streamseg.sources.gst_reader import GstAppsinkReader, choose_backend
from streamseg.sources.live import ReconnectingSource
from streamseg.sources.pyav_reader import PyAVLiveReader
from streamseg.sources.uri_params import parse_params, require_frame_size, require_positive

_SPEC = {"width": int, "height": int, "fps": int, "pattern": str}
_DEFAULTS = {"width": 640, "height": 360, "fps": 30, "pattern": "smpte"}


def open_testsrc(uri: str, options: SourceOptions) -> ReconnectingSource:
    parts = urlsplit(uri)
    if parts.netloc or parts.path not in ("", "/"):
        raise SourceError(f"testsrc takes only query parameters: testsrc://?width=&height=&fps=&pattern= (got {uri})")
    p = parse_params(uri, parts.query, _SPEC, _DEFAULTS)
    require_positive(uri, p, "width", "height", "fps")
    require_frame_size(uri, p)
    backend = choose_backend(options.backend, ("videotestsrc", "videoconvert", "appsink"), "testsrc://")
    if backend == "gstreamer":
        _check_pattern(uri, p["pattern"])
        description = (f"videotestsrc is-live=true pattern={p['pattern']} ! "
                       f"video/x-raw,width={p['width']},height={p['height']},framerate={p['fps']}/1")

        def connect(timeout_s: float):
            return GstAppsinkReader(description)
    else:
        graph = f"testsrc2=size={p['width']}x{p['height']}:rate={p['fps']},realtime"  # realtime: live pacing

        def connect(timeout_s: float):
            return PyAVLiveReader(graph, "lavfi", {}, timeout_s, options.read_timeout_s)

    return ReconnectingSource(uri, options, connect, fps=float(p["fps"]), backend=backend)


def _check_pattern(uri: str, pattern: str) -> None:
    """videotestsrc pattern names (smpte, ball, snow, ...) or numbers, checked at open time."""
    if not re.fullmatch(r"[A-Za-z0-9-]+", pattern):
        raise SourceError(f"unknown testsrc pattern '{pattern}' in {uri}")
    from gi.repository import Gst

    try:
        Gst.parse_launch(f"videotestsrc pattern={pattern}")
    except Exception:  # GLib.Error
        raise SourceError(f"unknown testsrc pattern '{pattern}' in {uri}") from None
