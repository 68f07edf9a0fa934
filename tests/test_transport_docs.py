"""The subscriber code in docs/protocol.md runs against a real Publisher and decodes the masks exactly."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from transport_helpers import VOCAB, border_masks, make_tracks

from streamseg.transport.publisher import Publisher

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "protocol.md").read_text()
MASKS = border_masks()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, re.S)


def _run_against_publisher(command: list[str], stream: str = "cam0") -> str:
    """Run a subscriber program while publishing MASKS; send EOS once it has printed something.

    The documented programs use the default address; tests point them at a free port instead.
    """
    frame, tracks = make_tracks(MASKS)
    with Publisher("tcp://127.0.0.1:*") as pub:
        command = [part.replace("tcp://127.0.0.1:5555", pub.address) for part in command]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        seq = 0
        while proc.poll() is None and seq < 3000:  # bounded: ~60 s at most
            pub.publish_seg(stream, seq, 0, frame, tracks, VOCAB)
            seq += 1
            if lines:  # it printed, so it is connected (slow joiner): EOS will reach it
                pub.publish_eos(stream, 0, seq - 1, "test over")
            reader.join(0.02)
        if proc.poll() is None:
            proc.kill()
            raise AssertionError("the documented subscriber did not stop at EOS")
        reader.join(5)
        err = proc.stderr.read()
    assert proc.returncode == 0, err
    return "".join(lines)


def _python_snippet(index: int) -> str:
    return _blocks("python")[index]


def test_doc_python_snippets_decode_the_published_masks():
    # snippet 0: the streamseg Subscriber; snippet 2: plain pyzmq + msgpack + pycocotools
    out = _run_against_publisher([sys.executable, "-c", _python_snippet(1)])
    areas = [int(line.split()[-1]) for line in out.splitlines() if line.startswith("cam0 ")]
    assert areas[:len(MASKS)] == [int(m.sum()) for m in MASKS]

    out = _run_against_publisher([sys.executable, "-c", _python_snippet(2)])
    areas = [int(line.split()[-1]) for line in out.splitlines() if line.startswith("cam0 ")]
    assert areas[:len(MASKS)] == [int(m.sum()) for m in MASKS]


def _cxx_include_dirs() -> list[str] | None:
    """Include dirs holding zmq.hpp, zmq_addon.hpp, zmq.h and msgpack.hpp (env STREAMSEG_CXX_INCLUDE adds one)."""
    candidates = [os.environ.get("STREAMSEG_CXX_INCLUDE", ""), "/usr/include", "/usr/local/include"]
    found = [d for d in candidates if d and (Path(d) / "zmq.hpp").exists()]
    if not found or not any((Path(d) / "msgpack.hpp").exists() for d in candidates if d):
        return None
    return [d for d in candidates if d]


@pytest.mark.slow
def test_doc_cxx_subscriber_compiles_and_decodes_the_published_masks(tmp_path):
    includes = _cxx_include_dirs()
    compiler = shutil.which("g++")
    libzmq = next((p for p in ("/usr/lib/x86_64-linux-gnu/libzmq.so", "/usr/lib/x86_64-linux-gnu/libzmq.so.5")
                   if Path(p).exists()), None)
    if not (includes and compiler and libzmq):
        pytest.skip("needs g++, libzmq and the cppzmq + msgpack-cxx headers (STREAMSEG_CXX_INCLUDE=dir)")
    source = tmp_path / "subscriber.cpp"
    source.write_text(_blocks("cpp")[0])
    binary = tmp_path / "subscriber"
    subprocess.run([compiler, "-std=c++17", "-O1", "-DMSGPACK_NO_BOOST", *(f"-I{d}" for d in includes),
                    str(source), "-o", str(binary), libzmq], check=True, timeout=300)
    out = _run_against_publisher([str(binary), "tcp://127.0.0.1:5555"])
    got = [line.split("area=")[1] for line in out.splitlines() if "area=" in line][:len(MASKS)]
    expected = []
    for m in MASKS:
        ys, xs = np.nonzero(m)
        expected.append((int(m.sum()), xs.mean() if xs.size else 0.0, ys.mean() if ys.size else 0.0))
    for text, (area, cx, cy) in zip(got, expected, strict=True):
        got_area, centroid = text.split(" centroid=")
        got_cx, got_cy = map(float, centroid.split(","))
        assert int(got_area) == area and abs(got_cx - cx) < 1e-3 * max(1, cx) and abs(got_cy - cy) < 1e-3 * max(1, cy)
