"""What the engine tells the world about each stream: the 1 Hz status message, the one-line terminal
status and the end-of-run summary. Pure formatting of numbers the pipeline collects."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


WIRE_STATES = ("connecting", "connected", "reconnecting", "paused", "ended")


@dataclass
class StreamStatus:
    """A snapshot of one stream (also the body of its ``status/<stream>`` message)."""

    stream: str
    source: str
    state: str  # connecting | connected | reconnecting | ended | error
    epoch: int
    fps_in: float
    fps_out: float
    frames_in: int
    frames_out: int
    dropped: int  # frames replaced in the latest-frame slot before inference saw them
    send_dropped: int  # messages the publisher dropped at its high-water mark (whole engine)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # stage -> {p50, p95}
    error: str | None = None

    def to_message(self) -> dict[str, Any]:
        """The fields protocol v1's ``encode_status`` takes (the wire knows no "error" state: a
        failed stream reports "ended" and its EOS carries reason "error")."""
        return {
            "state": self.state if self.state in WIRE_STATES else "ended" if self.state == "error" else "connected",
            "epoch": self.epoch,
            "fps_in": round(self.fps_in, 2), "fps_out": round(self.fps_out, 2),
            "dropped": self.dropped, "wire_dropped": self.send_dropped,
            "frames_in": self.frames_in, "frames_out": self.frames_out, "error": self.error,
            "latency_ms": self.latency_ms,
        }


def terminal_line(statuses: list[StreamStatus]) -> str:
    """One short line for a TTY, e.g. ``[0] 29.8 fps  lat p50 12.1 ms  drop 3 | [1] ...``."""
    parts = []
    for s in statuses:
        lat = s.latency_ms.get("capture_to_publish", {}).get("p50")
        lat_text = f"{lat:6.1f} ms" if lat is not None else "     - ms"
        parts.append(f"[{s.stream}] {s.state[:4]} {s.fps_out:5.1f} fps  lat p50 {lat_text}  "
                     f"drop {s.dropped}")
    return " | ".join(parts)


@dataclass
class StreamSummary:
    """End-of-run figures of one stream."""

    stream: str
    source: str
    frames: int  # processed and published
    frames_in: int  # read from the source
    dropped: int
    seconds: float
    eos_reason: str
    latency_ms: dict[str, dict[str, float]]  # whole run
    bytes_per_message: float
    record_path: str | None = None
    record_frames: int = 0
    error: str | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"stream": self.stream, "source": self.source, "frames": self.frames,
                "frames_in": self.frames_in, "fps": round(self.fps, 2), "dropped": self.dropped,
                "seconds": round(self.seconds, 3),
                "eos_reason": self.eos_reason, "latency_ms": self.latency_ms,
                "bytes_per_message": round(self.bytes_per_message, 1),
                "record_path": self.record_path, "record_frames": self.record_frames,
                "error": self.error}


def summary_text(summaries: list[StreamSummary], send_dropped: int) -> str:
    """The multi-line summary printed when ``streamseg run`` ends."""
    lines = []
    for s in summaries:
        lines.append(f"stream {s.stream} ({s.source}): {s.frames} frames in {s.seconds:.1f} s = "
                     f"{s.fps:.1f} fps, {s.dropped} dropped, {s.bytes_per_message:.0f} B/message, "
                     f"ended: {s.eos_reason}")
        for stage, p in s.latency_ms.items():
            lines.append(f"  {stage:<24} p50 {p['p50']:8.2f} ms   p95 {p['p95']:8.2f} ms")
        if s.record_path:
            lines.append(f"  recorded {s.record_frames} frames to {s.record_path}")
        if s.error:
            lines.append(f"  error: {s.error}")
    lines.append(f"publisher: {send_dropped} messages dropped at the high-water mark")
    return "\n".join(lines)
