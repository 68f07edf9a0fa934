"""One GStreamer appsink reader for every GStreamer-backed live source (RTSP, camera, test source).

The pipeline ends in ``videoconvert ! video/x-raw,format=RGB ! appsink drop=true max-buffers=1
sync=false``: the sink keeps only the newest frame, so a slow consumer never builds latency. Samples
are pulled with a timeout and the bus is polled for EOS/errors, so no GLib main loop is needed.
GStreamer is optional: without PyGObject (or the elements a source needs) the "auto" backend reads
with PyAV and says so in one stderr line per process.
"""
from __future__ import annotations

import functools
import sys

import numpy as np

from streamseg.errors import SourceError
from streamseg.sources.base import BACKENDS
from streamseg.sources.live import StreamLost

APPSINK = "videoconvert ! video/x-raw,format=RGB ! appsink name=sink drop=true max-buffers=1 sync=false"


def _gst():
    """The imported (Gst, GstVideo) modules, initialised; ImportError/ValueError when missing."""
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstApp", "1.0")
    gi.require_version("GstVideo", "1.0")
    from gi.repository import Gst, GstApp, GstVideo  # noqa: F401  (GstApp adds try_pull_sample)

    Gst.init(None)
    return Gst, GstVideo


def gstreamer_problem(*elements: str) -> str | None:
    """Why GStreamer cannot read a source needing ``elements`` in this process; None when it can."""
    try:
        Gst, _ = _gst()
    except ImportError:
        return "GStreamer's Python bindings (PyGObject's gi) are missing"
    except ValueError:  # gi without the GStreamer typelibs
        return "GStreamer's typelibs (gir1.2-gstreamer-1.0, gir1.2-gst-plugins-base-1.0) are missing"
    missing = [name for name in elements if Gst.ElementFactory.find(name) is None]
    return f"GStreamer lacks the element(s) {', '.join(missing)}" if missing else None


def gstreamer_available(*elements: str) -> bool:
    """True when PyGObject, GStreamer and the named elements can be used in this process."""
    return gstreamer_problem(*elements) is None


@functools.cache
def _notice_fallback(problem: str) -> None:
    """One stderr line per distinct problem and process: the fallback is fine, but should not be silent."""
    print(f"streamseg: note: {problem}; live sources are read with PyAV (FFmpeg) instead "
          "(for GStreamer: Debian's gstreamer1.0 packages and pip install 'streamseg[gstreamer]')",
          file=sys.stderr, flush=True)


def choose_backend(requested: str, elements: tuple[str, ...], what: str) -> str:
    """"gstreamer" or "pyav" for ``requested`` ("auto" prefers GStreamer when it has ``elements``)."""
    if requested not in BACKENDS:
        raise SourceError(f"unknown source backend '{requested}' (expected one of: {', '.join(BACKENDS)})")
    if requested == "pyav":
        return "pyav"
    problem = gstreamer_problem(*elements)
    if problem is None:
        return "gstreamer"
    if requested == "gstreamer":
        raise SourceError(f"{what} needs GStreamer with {', '.join(elements)} (PyGObject and Debian gstreamer1.0 "
                          f"packages): {problem}")
    _notice_fallback(problem)
    return "pyav"


class GstAppsinkReader:
    """A running pipeline ``<description> ! APPSINK``; read() returns its newest RGB frame."""

    def __init__(self, description: str, properties: dict[str, dict[str, object]] | None = None):
        """``properties`` sets element properties by element name (e.g. a URL containing quotes)."""
        Gst, GstVideo = _gst()
        self._Gst = Gst
        self._GstVideo = GstVideo
        try:
            self._pipeline = Gst.parse_launch(f"{description} ! {APPSINK}")
        except Exception as exc:  # GLib.Error: bad description or missing element
            raise SourceError(f"cannot build GStreamer pipeline '{description}': {exc}") from None
        for name, props in (properties or {}).items():
            element = self._pipeline.get_by_name(name)
            for key, value in props.items():
                element.set_property(key, value)
        self._sink = self._pipeline.get_by_name("sink")
        self._bus = self._pipeline.get_bus()
        if self._pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            reason = self._bus_error() or "pipeline refused to start"
            self.close()
            raise StreamLost(reason)

    def read(self, timeout_s: float) -> tuple[np.ndarray, float | None] | None:
        Gst = self._Gst
        reason = self._bus_error()
        if reason:
            raise StreamLost(reason)
        sample = self._sink.try_pull_sample(int(timeout_s * Gst.SECOND))
        if sample is None:
            if self._sink.is_eos():
                raise StreamLost("end of stream")
            reason = self._bus_error()
            if reason:
                raise StreamLost(reason)
            return None
        return self._to_array(sample)

    def _to_array(self, sample) -> tuple[np.ndarray, float | None]:
        Gst = self._Gst
        info = self._GstVideo.VideoInfo.new_from_caps(sample.get_caps())
        width, height, stride = info.width, info.height, info.stride[0]
        buf = sample.get_buffer()
        ok, mapped = buf.map(Gst.MapFlags.READ)
        if not ok:
            raise StreamLost("cannot map a video buffer")
        try:
            data = np.frombuffer(mapped.data, np.uint8)
            if data.size < stride * (height - 1) + width * 3:
                raise StreamLost(f"short video buffer ({data.size} bytes for {width}x{height})")
            rows = np.lib.stride_tricks.as_strided(data, (height, width * 3), (stride, 1), writeable=False)
            image = rows.copy().reshape(height, width, 3)  # copy before unmap: the buffer is reused
        finally:
            buf.unmap(mapped)
        pts = None if buf.pts == Gst.CLOCK_TIME_NONE else buf.pts / Gst.SECOND
        return image, pts

    def _bus_error(self) -> str | None:
        Gst = self._Gst
        msg = self._bus.pop_filtered(Gst.MessageType.ERROR | Gst.MessageType.EOS)
        if msg is None:
            return None
        if msg.type == Gst.MessageType.EOS:
            return "end of stream"
        err, _debug = msg.parse_error()
        return err.message

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.set_state(self._Gst.State.NULL)
            self._pipeline = None
