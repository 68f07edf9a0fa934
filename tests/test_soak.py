"""Soak: `streamseg run` with the tiny config for 100,000 frames; its RSS and open fds stay flat.

Slow-marked (hours on the 2-core dev machine: ~40-80 ms a frame). STREAMSEG_SOAK_FRAMES sets a
shorter run for a quick look. Frames are tiny (32x16, one instance) so the run measures the
engine and model's steady state, not decoding. Start = after 10 % of the frames (allocator and
caches warmed up); end = after 95 %.
"""
import os
import time

import pytest
from engine_helpers import start_cli

from streamseg.transport import Subscriber

FRAMES = int(os.environ.get("STREAMSEG_SOAK_FRAMES", "100000"))
BOUND_S = 600.0 + FRAMES * 0.5  # 0.5 s a frame, ten times the dev machine's pace


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.slow
@pytest.mark.timeout(BOUND_S + 120)
def test_tiny_config_soak_keeps_rss_and_fds_flat(free_port):
    address = f"tcp://127.0.0.1:{free_port}"
    uri = f"synthetic://?fps=0&width=32&height=16&instances=1&frames={FRAMES}"
    samples = {}
    with Subscriber(address, rcvhwm=10_000) as sub:
        proc = start_cli("run", "--config", "tiny-test", "--untrained", "--set", "vocabulary.names=a,b",
                         "--source", uri, "--publish", address, "--quiet", "--set", "engine.send_hwm=1000",
                         "--wait-subscribers", "1", "--wait-timeout", "120")
        t0 = time.monotonic()
        eos = None
        last_seq = -1
        try:
            deadline = t0 + BOUND_S
            while eos is None and time.monotonic() < deadline and proc.poll() is None:
                msg = sub.recv(timeout_ms=500)
                if msg is None:
                    continue
                if msg.kind == "eos":
                    eos = msg
                    continue
                if msg.kind != "seg":
                    continue
                last_seq = msg.seq
                for name, at in (("start", 0.10), ("end", 0.95)):
                    if name not in samples and msg.seq >= int(at * FRAMES):
                        samples[name] = (msg.seq, _rss_mib(proc.pid), _fds(proc.pid), time.monotonic() - t0)
        finally:
            if proc.poll() is None and eos is None:
                proc.kill()
            out, err = proc.communicate(timeout=60)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, err
    assert eos is not None and eos.reason == "end" and eos.seq == FRAMES - 1 == last_seq
    (s_seq, s_rss, s_fds, s_t), (e_seq, e_rss, e_fds, e_t) = samples["start"], samples["end"]
    print(f"\nsoak: {FRAMES} frames in {wall:.0f} s ({(e_seq - s_seq) / (e_t - s_t):.1f} frames/s steady); "
          f"RSS {s_rss:.1f} MiB at frame {s_seq} -> {e_rss:.1f} MiB at frame {e_seq}; fds {s_fds} -> {e_fds}")
    assert e_rss - s_rss <= 16 + 0.05 * s_rss, (s_rss, e_rss)  # flat: allocator noise, no per-frame growth
    assert abs(e_fds - s_fds) <= 2, (s_fds, e_fds)
