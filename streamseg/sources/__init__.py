"""Video sources selected by URI; see :func:`open_source`."""
from __future__ import annotations

import re

from streamseg.errors import SourceError
from streamseg.sources.base import Source, SourceOptions

__all__ = ["open_source", "Source", "SourceOptions", "SCHEMES"]

SCHEMES = "a file path, file://, rtsp://, camera:/dev/videoN, synthetic://, testsrc://"
_FFMPEG_URLS = ("http", "https", "rtmp", "srt", "udp", "tcp")  # network inputs FFmpeg reads like files


def open_source(uri: str, options: SourceOptions | None = None) -> Source:
    """Open the source ``uri`` names; raises SourceError for unknown schemes and missing inputs."""
    options = options or SourceOptions()
    scheme = _scheme(uri)
    if scheme in ("rtsp", "rtsps"):
        from streamseg.sources.rtsp import open_rtsp

        return open_rtsp(uri, options)
    if scheme == "camera":
        from streamseg.sources.camera import open_camera

        return open_camera(uri, options)
    if scheme == "synthetic":
        from streamseg.sources.synthetic import SyntheticSource

        return SyntheticSource(uri, options)
    if scheme == "testsrc":
        from streamseg.sources.testsrc import open_testsrc

        return open_testsrc(uri, options)
    from streamseg.sources.file import FileSource

    if scheme == "file":
        return FileSource(uri, options, path=uri[len("file://"):] if uri.startswith("file://") else uri[5:])
    if scheme in _FFMPEG_URLS:
        return FileSource(uri, options, check_exists=False)
    if scheme is None:
        return FileSource(uri, options)
    raise SourceError(f"unknown source scheme '{scheme}:' in {uri} (expected {SCHEMES})")


def _scheme(uri: str) -> str | None:
    """The URI scheme, or None for a plain path (a one-letter 'scheme' is a Windows drive)."""
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", uri)
    if not m or len(m.group(1)) == 1:
        return None
    return m.group(1).lower()
