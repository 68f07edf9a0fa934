"""Bad inputs to `streamseg run` (real subprocesses): one-line error naming the problem, exit 2."""
import os

import pytest
from engine_helpers import run_cli


def _assert_one_line_error(result, *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("streamseg: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


def _run(free_port, *args):
    return run_cli("run", *args, "--segmenter", "ground-truth", "--quiet",
                   "--publish", f"tcp://127.0.0.1:{free_port}", timeout=30)


def test_missing_file(free_port, tmp_path):
    path = tmp_path / "nope.mp4"
    _assert_one_line_error(_run(free_port, "--source", str(path)), "not found", str(path))


def test_corrupt_file(free_port, tmp_path):
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(os.urandom(4096))
    _assert_one_line_error(_run(free_port, "--source", str(path)), str(path))


def test_dead_rtsp_url(free_port):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    url = f"rtsp://127.0.0.1:{dead}/none"
    line = _assert_one_line_error(_run(free_port, "--source", url, "--set", "source.open_timeout_s=1",
                                        "--set", "source.reconnect_attempts=1"), url)
    assert "stream 0" in line


def test_silent_tcp_server(free_port):
    from sources_helpers import SilentTcpServer

    with SilentTcpServer() as server:
        url = f"tcp://127.0.0.1:{server.port}"
        line = _assert_one_line_error(_run(free_port, "--source", url, "--set", "source.open_timeout_s=1"), url)
    assert line.endswith("no data within 1s (connected, but the sender is silent)")
    assert "Immediate exit" not in line


def test_unknown_scheme(free_port):
    _assert_one_line_error(_run(free_port, "--source", "gopher://x/y"), "unknown source scheme", "gopher")


def test_missing_camera_device(free_port):
    _assert_one_line_error(_run(free_port, "--source", "camera:/dev/video97"), "/dev/video97")


@pytest.mark.parametrize("override, needle", [
    ("engine.status_hz=-1", "engine.status_hz"),
    ("engine.send_hwm=lots", "engine.send_hwm"),
    ("engine.no_such_field=1", "engine.no_such_field"),
])
def test_bad_config_value(free_port, override, needle):
    _assert_one_line_error(_run(free_port, "--source", "synthetic://", "--set", override), needle)


def test_ground_truth_segmenter_on_a_source_without_truth(free_port):
    result = _run(free_port, "--source", "testsrc://?width=64&height=48&fps=30")
    if "GStreamer" in result.stderr and "stream 0" not in result.stderr:
        pytest.skip("testsrc needs GStreamer")
    _assert_one_line_error(result, "ground-truth", "synthetic://")


def test_stream_id_count_must_match_sources(free_port):
    _assert_one_line_error(_run(free_port, "--source", "synthetic://", "--source", "synthetic://",
                                "--stream-id", "a"), "--stream-id")


def test_address_already_in_use(free_port):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port))
        s.listen()
        _assert_one_line_error(_run(free_port, "--source", "synthetic://", "--max-frames", "1"),
                               f"127.0.0.1:{free_port}")
