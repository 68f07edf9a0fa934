"""Silent or misleading CLI inputs now end in one-line errors (issue 10, item 7).

Real `streamseg run` subprocesses with the ground-truth segmenter (model-free, fast).
"""
from __future__ import annotations

import time

import pytest
from cli_helpers import one_line_error as _one_line_error
from engine_helpers import run_cli

from streamseg.errors import ConfigError, SourceError
from streamseg.sources import SourceOptions, open_source
from streamseg.transport.address import check_endpoint
from streamseg.transport.publisher import Publisher


def _run(*args):
    return run_cli("run", "--segmenter", "ground-truth", "--quiet", "--max-frames", "2", *args, timeout=30)


def test_publish_port_out_of_range():
    _one_line_error(_run("--publish", "tcp://127.0.0.1:99999", "--source", "synthetic://?fps=0"),
                    "99999", "out of range")


def test_publish_empty_is_an_error_not_the_default():
    _one_line_error(_run("--publish", "", "--source", "synthetic://?fps=0"), "--publish", "empty")


def test_publish_in_config_is_checked_at_load():
    _one_line_error(_run("--set", "engine.publish=tcp://127.0.0.1:70000", "--source", "synthetic://?fps=0"),
                    "engine.publish", "out of range")


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:99999", "tcp://127.0.0.1:-1", "tcp://127.0.0.1",
                                     "tcp://:5555", "", ">", "127.0.0.1:5555", "tcp://127.0.0.1:port"])
def test_check_endpoint_refuses(address):
    with pytest.raises(ConfigError):
        check_endpoint(address)


def test_good_endpoints_still_bind(free_port):
    for address in ("tcp://127.0.0.1:*", f"tcp://127.0.0.1:{free_port}", "inproc://hardening-test"):
        check_endpoint(address)
        with Publisher(address) as pub:
            if address.startswith("tcp"):
                assert pub.address.startswith("tcp://127.0.0.1:")
                assert 0 < int(pub.address.rsplit(":", 1)[1]) <= 65535
    with pytest.raises(ConfigError, match="out of range"):
        Publisher("tcp://127.0.0.1:99999")


def test_directory_as_source(free_port, tmp_path):
    _one_line_error(_run("--publish", f"tcp://127.0.0.1:{free_port}", "--source", str(tmp_path)),
                    str(tmp_path), "is a directory")


@pytest.mark.parametrize("uri, needle", [
    ("rtsp://", "no host"),
    ("rtsp:///stream", "no host"),
    ("rtsp://:8554/stream", "no host"),
    ("rtsp://127.0.0.1:99999/stream", "bad port"),
    ("rtsp://127.0.0.1:abc/stream", "bad port"),
])
def test_malformed_rtsp_is_refused_at_open_without_waiting(free_port, uri, needle):
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=needle):  # build_engine opens sources before loading the model
        open_source(uri, SourceOptions(open_timeout_s=5.0))
    assert time.monotonic() - t0 < 1.0  # refused from the URI alone: no connect attempt, no timeout
    _one_line_error(_run("--publish", f"tcp://127.0.0.1:{free_port}", "--source", uri), uri, needle)


def test_control_port_out_of_range_before_anything_runs(free_port):
    _one_line_error(_run("--publish", f"tcp://127.0.0.1:{free_port}", "--control", "tcp://127.0.0.1:99999",
                         "--source", "synthetic://?fps=0"), "--control", "out of range")


def test_proxy_refuses_out_of_range_ports():
    from streamseg.transport.proxy import Proxy

    with pytest.raises(ConfigError, match="XPUB.*out of range"):
        Proxy("tcp://127.0.0.1:*", "tcp://127.0.0.1:70000")
