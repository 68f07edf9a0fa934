"""Source figures: RTSP first-frame and resume times, synthetic-scene render cost.

    .venv/bin/python tools/sources_figures.py [--runs 5] [--down 1.0] [--backend auto]

RTSP: a real GstRtspServer on 127.0.0.1 (tests/sources_helpers.py). Per run: open → first frame;
then the server is killed, stays down ``--down`` seconds after the source notices, and restarts on
the same port; "resume" is the time from the server listening again to the first frame of epoch 1.
Medians over the runs are printed; the machine is shared, so read them as rough figures.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import threading
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(_ROOT, "tests"), _ROOT]  # the RTSP test server; streamseg when not installed

from sources_helpers import RtspTestServer  # noqa: E402

from streamseg.sources import SourceOptions, open_source  # noqa: E402
from streamseg.data.synthetic_scene import SceneConfig, SyntheticScene  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rtsp_run(backend: str, down_s: float) -> tuple[float, float]:
    """(first-frame seconds after open, resume seconds after the server returned)."""
    with RtspTestServer(free_port()) as server:
        source = open_source(server.url, SourceOptions(open_timeout_s=10.0, backend=backend))
        marks: dict[str, float] = {}

        def outage() -> None:
            time.sleep(0.5)
            server.stop()
            while source.state != "reconnecting":
                time.sleep(0.01)
            time.sleep(down_s)
            server.start()
            marks["back"] = time.monotonic()

        control = threading.Thread(target=outage)
        guard = threading.Timer(30.0, source.close)
        guard.start()
        t_open = time.monotonic()
        try:
            for frame in source.frames():
                if "first" not in marks:
                    marks["first"] = time.monotonic()
                    control.start()
                if frame.epoch == 1:
                    marks["resumed"] = time.monotonic()
                    break
        finally:
            guard.cancel()
            source.close()
            if control.ident is not None:
                control.join()
    if "resumed" not in marks:
        raise RuntimeError(f"no frame after the server returned: {source.last_error}")
    return marks["first"] - t_open, marks["resumed"] - marks["back"]


def render_ms(width: int, height: int, instances: int, n: int = 200) -> tuple[float, float, float]:
    """(wall p50, wall p95, CPU-time p50) of render() in ms; CPU time is the steadier figure on a busy machine."""
    scene = SyntheticScene(SceneConfig(seed=1, width=width, height=height, instances=instances))
    for i in range(10):
        scene.render(i)
    wall, cpu = [], []
    for i in range(n):
        t, c = time.perf_counter(), time.process_time()
        scene.render(300 + i)
        wall.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    wall.sort()
    return statistics.median(wall), wall[int(0.95 * (n - 1))], statistics.median(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--down", type=float, default=1.0, help="seconds the server stays down")
    parser.add_argument("--backend", default="auto", choices=("auto", "gstreamer", "pyav"))
    parser.add_argument("--render-only", action="store_true", help="skip the RTSP runs")
    args = parser.parse_args()
    firsts, resumes = [], []
    for _ in range(0 if args.render_only else args.runs):
        first, resume = rtsp_run(args.backend, args.down)
        firsts.append(first)
        resumes.append(resume)
    if firsts:
        print(f"rtsp[{args.backend}] first frame: median {statistics.median(firsts):.3f}s "
              f"(runs: {', '.join(f'{x:.3f}' for x in firsts)})")
        print(f"rtsp[{args.backend}] resume after server returns (down {args.down:g}s): median "
              f"{statistics.median(resumes):.3f}s (runs: {', '.join(f'{x:.3f}' for x in resumes)})")
    for width, height, instances in ((640, 360, 6), (1280, 720, 10)):
        p50, p95, cpu = render_ms(width, height, instances)
        print(f"synthetic render {width}x{height} {instances} instances: p50 {p50:.2f} ms, p95 {p95:.2f} ms "
              f"(CPU time p50 {cpu:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
