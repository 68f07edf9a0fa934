"""Recording figures: what a SIGKILLed `streamseg run --record` leaves, and how long it plays.

    .venv/bin/python tools/record_kill_figures.py [--after 5,30] [--suffix .mp4] [--segmenter ground-truth]

Per kill time: `streamseg run` on the live synthetic scene (a real subprocess) records while a real
Subscriber counts the seg messages it publishes (one recorded frame each); SIGKILL after the given
seconds of publishing, then the file is decoded with PyAV. Printed: frames published, frames that
decode from the killed file, the gap in seconds, and the recording's duration against the capture
span of the frames it holds (the recording is timed by capture time). Rough figures: the machine is
shared.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [_ROOT]  # streamseg when not installed

import av  # noqa: E402

from streamseg.transport import Subscriber  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def decoded_times(path: str) -> list[float]:
    times: list[float] = []
    with av.open(path) as container:
        try:
            for frame in container.decode(video=0):
                times.append(float(frame.time))
        except av.error.FFmpegError:  # a torn last fragment
            pass
    return times


def kill_run(after_s: float, uri: str, suffix: str, segmenter: str, folder: str) -> dict:
    address = f"tcp://127.0.0.1:{free_port()}"
    out = os.path.join(folder, f"killed-{after_s:g}s{suffix}")
    env = dict(os.environ, PYTHONPATH=_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "streamseg", "run", "--source", uri, "--segmenter", segmenter,
           "--publish", address, "--record", out, "--quiet"]
    if segmenter == "model":
        cmd += ["--set", "model.threads=1"]
    capture: dict[int, int] = {}  # seq -> t_capture_ns
    with Subscriber(address) as sub:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            t_first = None
            deadline = time.monotonic() + after_s + 120
            while time.monotonic() < deadline:
                msg = sub.recv(timeout_ms=100)
                if msg is not None and msg.kind == "seg":
                    capture[msg.seq] = msg.t_capture_ns
                    t_first = t_first or time.monotonic()
                if t_first is not None and time.monotonic() - t_first >= after_s:
                    break
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                msg = sub.recv(timeout_ms=100)
                if msg is not None and msg.kind == "seg":
                    capture[msg.seq] = msg.t_capture_ns
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=5)
    if not capture:
        raise SystemExit(f"no frame was published in {after_s + 120:.0f} s")
    produced = max(capture) + 1
    times = decoded_times(out) if os.path.getsize(out) else []
    kept = len(times)
    known = [s for s in capture if s < kept]
    span = (capture[max(known)] - capture[min(known)]) / 1e9 if len(known) > 1 else 0.0
    duration = times[max(known)] - times[min(known)] if len(known) > 1 else 0.0
    return {"after_s": after_s, "produced": produced, "kept": kept, "lost": produced - kept,
            "lost_s": (capture[produced - 1] - capture[kept - 1]) / 1e9 if kept and kept - 1 in capture else None,
            "bytes": os.path.getsize(out), "duration_s": duration, "capture_span_s": span}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--after", default="5,30", help="comma list of seconds of publishing before the kill")
    p.add_argument("--uri", default="synthetic://?seed=0&fps=15&width=640&height=360&instances=6")
    p.add_argument("--suffix", default=".mp4", choices=(".mp4", ".mov", ".mkv"))
    p.add_argument("--segmenter", default="ground-truth", choices=("ground-truth", "model"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for after in (float(a) for a in args.after.split(",")):
            r = kill_run(after, args.uri, args.suffix, args.segmenter, folder)
            lost_s = f"{r['lost_s']:.2f} s" if r["lost_s"] is not None else "?"
            print(f"SIGKILL after {r['after_s']:g} s ({args.suffix}, {args.segmenter}): {r['produced']} frames "
                  f"published, {r['kept']} decode from the file ({r['lost']} lost = the last {lost_s}), "
                  f"{r['bytes'] / 1e6:.2f} MB; kept video plays {r['duration_s']:.2f} s for "
                  f"{r['capture_span_s']:.2f} s of capture", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
