"""GStreamer is optional: with PyGObject's ``gi`` unimportable, live sources read with PyAV and one
stderr line says so, once per process. Real subprocesses, whose ``gi`` import really fails (a ``gi``
package on PYTHONPATH that raises ImportError, as a missing PyGObject does)."""
import re
import subprocess
import sys

import pytest
from engine_helpers import ROOT, streamseg_cmd, subprocess_env

from streamseg.sources.gst_reader import gstreamer_available

NOTICE = ("streamseg: note: GStreamer's Python bindings (PyGObject's gi) are missing; live sources are read "
          "with PyAV (FFmpeg) instead")

# Opens a GStreamer-preferring source of each kind (auto backend), reads testsrc frames through
# whichever backend was chosen, and prints what it got.
SCRIPT = """
from streamseg.sources import open_source
from streamseg.sources.base import SourceOptions
rtsp = open_source("rtsp://127.0.0.1:9/x", SourceOptions())
test = open_source("testsrc://?width=64&height=48&fps=10", SourceOptions())
frames = []
for frame in test.frames():
    frames.append(frame)
    if len(frames) == 3:
        break
test.close()
print(rtsp.backend, test.backend, [f.image.shape for f in frames], [f.index for f in frames])
"""


def _env_without_gi(tmp_path):
    blocked = tmp_path / "no-gi" / "gi"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text('raise ImportError("No module named \'gi\' (blocked by the test)")\n')
    env = subprocess_env()
    env["PYTHONPATH"] = str(blocked.parent) + ":" + env["PYTHONPATH"]
    return env


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_without_gi_sources_fall_back_to_pyav_with_one_notice(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=_env_without_gi(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "pyav pyav [(48, 64, 3), (48, 64, 3), (48, 64, 3)] [0, 1, 2]"
    notices = _lines(proc.stderr)
    assert len(notices) == 1, proc.stderr  # two sources opened, one notice
    assert notices[0].startswith(NOTICE)
    assert "pip install 'streamseg[gstreamer]'" in notices[0]


def test_without_gi_the_cli_runs_a_testsrc_through_pyav_and_says_so_once(tmp_path):
    proc = subprocess.run(streamseg_cmd("run", "--source", "testsrc://?width=64&height=48&fps=10",
                                        "--max-frames", "3", "--publish", "inproc://no-gi"),
                          cwd=tmp_path, env=_env_without_gi(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^stream 0 \(testsrc://\S+\): 3 frames in ", proc.stdout, re.M), proc.stdout
    notices = [line for line in _lines(proc.stderr) if line.startswith("streamseg: note: GStreamer")]
    assert len(notices) == 1 and notices[0].startswith(NOTICE), proc.stderr
    assert "Traceback" not in proc.stderr


def test_without_gi_asking_for_gstreamer_is_a_one_line_error(tmp_path):
    script = ("from streamseg.sources import open_source\nfrom streamseg.sources.base import SourceOptions\n"
              "open_source('testsrc://?width=64&height=48', SourceOptions(backend='gstreamer'))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=_env_without_gi(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    last = _lines(proc.stderr)[-1]
    assert last.startswith("streamseg.errors.SourceError: testsrc:// needs GStreamer")
    assert last.endswith("GStreamer's Python bindings (PyGObject's gi) are missing")


@pytest.mark.skipif(not gstreamer_available("videotestsrc", "videoconvert", "appsink"),
                    reason="GStreamer with videotestsrc is not importable here")
def test_with_gi_the_same_sources_use_gstreamer_and_print_no_notice():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("gstreamer gstreamer [(48, 64, 3), (48, 64, 3), (48, 64, 3)]")
    assert "streamseg: note:" not in proc.stderr
