"""How a recording is written so that it survives the engine, and what time each frame gets.

Crash safety: MP4/MOV are written fragmented (``empty_moov``: the index travels with each
fragment, a new fragment at every keyframe) and Matroska in clusters of at most one fragment's
length; the muxer flushes every packet. A keyframe is forced every ``fragment_s`` seconds of
video, so a SIGKILL loses at most the fragment being built (about ``fragment_s``), and whatever the
file holds plays. A clean close (SIGINT, end of stream) writes the trailer as before.

Timing: a live source's frames are stamped with their capture time (relative to the first recorded
frame), so a run that dropped frames still plays back at the speed it happened; files processed
frame by frame keep their own pts (relative to the first frame).
"""
from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Any

from streamseg.errors import ConfigError
from streamseg.interface import Frame

TIME_BASE = Fraction(1, 90000)  # the MPEG clock: capture times to ~11 us
FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}


def container_options(suffix: str, fragment_s: float) -> dict[str, str]:
    """Muxer options that keep everything written so far playable after a kill."""
    options = {"flush_packets": "1"}
    if FORMATS.get(suffix.lower()) == "matroska":
        options["cluster_time_limit"] = str(max(1, int(round(fragment_s * 1000))))  # ms
    else:
        options["movflags"] = "frag_keyframe+empty_moov+default_base_moof"
    return options


def check_record_target(path: str | Path, codec: str) -> None:
    """Everything about a recording that can fail before a frame exists: one-line ConfigError.

    The suffix picks the container; the path must be a writable file (not a folder, not under a
    folder that is missing or read-only, /proc, ...); the codec must be a video encoder the
    container takes. The check never truncates an existing file."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"cannot record to {p}: it is a folder, give a file name like {p / 'out.mp4'}")
    if p.suffix.lower() not in FORMATS:
        raise ConfigError(f"cannot record to {p}: the file name must end in .mp4 (or .mov/.mkv)")
    parent = p.resolve().parent
    if not parent.is_dir():
        raise ConfigError(f"cannot record to {p}: folder {parent} does not exist")
    existed = p.exists()
    if not existed or p.is_file():  # a pipe or device the user named is not opened here (it may block)
        try:
            with open(p, "ab"):
                pass
        except OSError as exc:
            raise ConfigError(f"cannot record to {p}: cannot create the file ({exc.strerror or exc})") from None
    if not existed:
        try:
            p.unlink()
        except OSError:
            pass
    _check_codec(codec, FORMATS[p.suffix.lower()])


def _check_codec(codec: str, format_name: str) -> None:
    import av

    try:
        found = av.codec.Codec(codec, "w")
    except Exception:
        raise ConfigError(f"engine.record_codec {codec!r}: FFmpeg has no such encoder") from None
    if found.type != "video":
        raise ConfigError(f"engine.record_codec {codec!r} encodes {found.type}, not video")
    with av.open(io.BytesIO(), mode="w", format=format_name) as probe:
        try:
            probe.add_stream(codec, rate=30)
        except ValueError as exc:  # e.g. "'mp4' format does not support 'h263' codec"
            raise ConfigError(f"engine.record_codec {codec!r}: {exc}") from None
    ctx: Any = av.CodecContext.create(codec, "w")  # a VideoCodecContext (the stubs say CodecContext)
    ctx.width, ctx.height, ctx.pix_fmt = 64, 64, "yuv420p"
    ctx.time_base = TIME_BASE
    ctx.framerate = Fraction(30)
    try:
        ctx.open()  # the settings the recorder uses (a 1/90000 time base rules out e.g. mpeg4)
    except Exception as exc:
        raise ConfigError(f"engine.record_codec {codec!r} does not open with yuv420p frames and a "
                          f"1/90000 time base: {exc}") from None


class FrameClock:
    """Seconds since the first recorded frame, for each frame the recorder is given.

    ``live``: the frame's capture time (a live source drops frames and runs at its own pace, so
    a frame counter would play the recording back sped up). Otherwise the source's pts; a frame
    without pts comes one nominal frame after the previous one, and a pts that goes backwards (a
    looped file without offsets) continues from the previous frame."""

    def __init__(self, live: bool, fps: float) -> None:
        self.live = live
        self.step = 1.0 / fps if fps > 0 else 1.0 / 30.0
        self._origin: float | None = None
        self._last: float | None = None

    def seconds(self, frame: Frame) -> float:
        raw = frame.t_capture_ns / 1e9 if self.live else frame.pts
        if raw is None:
            t = 0.0 if self._last is None else self._last + self.step
        else:
            if self._origin is None:
                self._origin = float(raw)
            t = float(raw) - self._origin
            if self._last is not None and t <= self._last:
                self._origin -= self._last + self.step - t  # keep time moving forward
                t = self._last + self.step
        self._last = t
        return t


def keyframe_due(t: float, last_key: float | None, fragment_s: float) -> bool:
    """A keyframe (and so a new fragment) at the first frame and every ``fragment_s`` after."""
    return last_key is None or t - last_key >= fragment_s


def as_ticks(t: float, last_ticks: int | None) -> int:
    """``t`` seconds in TIME_BASE ticks, strictly after the previous frame's (muxers require it)."""
    ticks = int(round(t / TIME_BASE))
    return ticks if last_ticks is None or ticks > last_ticks else last_ticks + 1


def picture_type_i() -> Any:
    import av

    return av.video.frame.PictureType.I
