"""What the engine tells the world about each stream: the 1 Hz status message, the one-line terminal
status and the end-of-run summary. Pure formatting of numbers the pipeline collects."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streamseg.transport.protocol import STATES as WIRE_STATES


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
    # For the terminal line only (not on the wire): the latest frame's instances, the source's length.
    instances: int = 0
    top_labels: list[tuple[str, int]] = field(default_factory=list)  # (label, count), most frequent first
    total_frames: int | None = None

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
    """One short line for a TTY, e.g. ``[0] conn 29.8 fps  lat p50 12.1 ms  drop 3  3 inst: disk 2, ring 1
    120/300 ETA 0:06 | [1] ...`` (n/total and ETA for sources that know their length)."""
    parts = []
    for s in statuses:
        lat = s.latency_ms.get("capture_to_publish", {}).get("p50")
        lat_text = f"{lat:6.1f} ms" if lat is not None else "     - ms"
        text = (f"[{s.stream}] {s.state[:4]} {s.fps_out:5.1f} fps  lat p50 {lat_text}  "
                f"drop {s.dropped}  {s.instances} inst")
        if s.top_labels:
            text += ": " + ", ".join(f"{label} {n}" for label, n in s.top_labels)
        if s.total_frames:
            text += f"  {s.frames_out}/{s.total_frames}"
            left = max(0, s.total_frames - s.frames_out)
            if s.fps_out > 0:
                secs = int(round(left / s.fps_out))
                text += f" ETA {secs // 60}:{secs % 60:02d}"
        parts.append(text)
    return " | ".join(parts)


def top_labels(labels: list[str], n: int = 3) -> list[tuple[str, int]]:
    """The ``n`` most frequent labels with their counts (ties: first seen first)."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])[:n]


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
