"""camera:/dev/videoN?width=&height=&fps= — V4L2 devices via GStreamer v4l2src (PyAV v4l2 fallback).

Written for real devices (none exist on the build machines). Width/height/fps are requests: the
capsfilter accepts raw or MJPEG at that mode, so common USB cameras negotiate either way.
"""
from __future__ import annotations

import os
from urllib.parse import urlsplit

from streamseg.errors import SourceError
from streamseg.sources.base import SourceOptions
from streamseg.sources.gst_reader import GstAppsinkReader, choose_backend
from streamseg.sources.live import ReconnectingSource
from streamseg.sources.pyav_reader import PyAVLiveReader
from streamseg.sources.uri_params import parse_params, require_positive

_SPEC = {"width": int, "height": int, "fps": int}
_DEFAULTS = {"width": None, "height": None, "fps": None}


def parse_camera_uri(uri: str) -> tuple[str, dict]:
    """(device path, params) of ``camera:/dev/video0?...``; ``camera:0`` means /dev/video0."""
    parts = urlsplit(uri)
    device = parts.netloc + parts.path if parts.netloc else parts.path
    if device.isdigit():
        device = f"/dev/video{device}"
    if not device:
        raise SourceError(f"camera URI needs a device: camera:/dev/video0?width=&height=&fps= (got {uri})")
    params = parse_params(uri, parts.query, _SPEC, _DEFAULTS)
    require_positive(uri, params, "width", "height", "fps")
    return device, params


def open_camera(uri: str, options: SourceOptions) -> ReconnectingSource:
    device, p = parse_camera_uri(uri)
    if not os.path.exists(device):
        raise SourceError(f"camera device {device} not found")
    backend = choose_backend(options.backend, ("v4l2src", "decodebin", "videoconvert", "appsink"), "camera:")
    if backend == "gstreamer":
        mode = "".join(f",{k}={p[k]}" for k in ("width", "height") if p[k]) + (
            f",framerate={p['fps']}/1" if p["fps"] else "")
        caps = f"video/x-raw{mode};image/jpeg{mode}"
        description = f'v4l2src name=src ! capsfilter caps="{caps}" ! decodebin'

        def connect(timeout_s: float):
            return GstAppsinkReader(description, {"src": {"device": device}})
    else:
        import av

        if "v4l2" not in av.formats_available:
            raise SourceError("camera: needs GStreamer v4l2src: this PyAV build has no v4l2 input")
        ff_options = {}
        if p["width"] and p["height"]:
            ff_options["video_size"] = f"{p['width']}x{p['height']}"
        if p["fps"]:
            ff_options["framerate"] = str(p["fps"])

        def connect(timeout_s: float):
            return PyAVLiveReader(device, "v4l2", ff_options, timeout_s, options.read_timeout_s)

    return ReconnectingSource(uri, options, connect, fps=float(p["fps"]) if p["fps"] else None, backend=backend,
                              probe=lambda: os.path.exists(device))  # a replugged camera is retried at once
