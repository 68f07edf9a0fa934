"""rtsp:// sources: GStreamer rtspsrc over TCP with zero jitter-buffer latency, PyAV as fallback."""
from __future__ import annotations

from streamseg.sources.base import SourceOptions
from streamseg.sources.gst_reader import GstAppsinkReader, choose_backend
from streamseg.sources.live import ReconnectingSource
from streamseg.sources.pyav_reader import PyAVLiveReader

_ELEMENTS = ("rtspsrc", "decodebin", "videoconvert", "appsink")


def open_rtsp(uri: str, options: SourceOptions) -> ReconnectingSource:
    backend = choose_backend(options.backend, _ELEMENTS, "rtsp://")

    def connect(timeout_s: float):
        if backend == "gstreamer":
            # latency=0: no jitter buffering (lowest delay); TCP: no UDP loss/firewall issues.
            return GstAppsinkReader(
                "rtspsrc name=src protocols=tcp latency=0 ! decodebin",
                {"src": {"location": uri, "tcp-timeout": int(timeout_s * 1e6)}},
            )
        return PyAVLiveReader(uri, None, {"rtsp_transport": "tcp"}, timeout_s, options.read_timeout_s)

    return ReconnectingSource(uri, options, connect, backend=backend)
