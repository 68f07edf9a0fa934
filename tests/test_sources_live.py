"""Live sources against real GStreamer pipelines and a real RTSP server on 127.0.0.1.

Run with -s to see the RTSP first-frame and resume times.
"""
import socket
import threading
import time

import numpy as np
import pytest
from sources_helpers import RtspTestServer

from streamseg.errors import SourceError
from streamseg.sources import SourceOptions, open_source
from streamseg.sources.gst_reader import GstAppsinkReader, gstreamer_available
from streamseg.sources.live import ReconnectingSource


def _needs(*elements):
    """Mark a test as needing GStreamer (marker ``gst``) and skip it where those elements are missing."""
    skip = pytest.mark.skipif(not gstreamer_available(*elements), reason=f"GStreamer {elements} not importable")

    def mark(test):
        return pytest.mark.gst(skip(test))

    return mark


needs_gst = _needs("videotestsrc", "appsink")
needs_rtsp = _needs("rtspsrc", "x264enc", "rtph264pay")


def take(source, n, timeout_s=10.0):
    """The first n frames of a live source (closing it), bounded in time by a timer."""
    timer = threading.Timer(timeout_s, source.close)
    timer.start()
    got = []
    try:
        for frame in source.frames():
            got.append(frame)
            if len(got) == n:
                break
    finally:
        timer.cancel()
        source.close()
    return got


@needs_gst
@pytest.mark.parametrize("backend", ["gstreamer", "pyav"])
def test_testsrc_yields_frames_of_the_requested_size(backend):
    source = open_source("testsrc://?width=160&height=96&fps=30&pattern=ball", SourceOptions(backend=backend))
    assert source.live and source.fps == 30.0
    frames = take(source, 6)
    assert len(frames) == 6
    assert [f.index for f in frames] == list(range(6))
    for f in frames:
        assert f.image.shape == (96, 160, 3) and f.image.dtype == np.uint8 and f.image.flags.c_contiguous
        assert f.epoch == 0
    assert frames[0].image.std() > 10  # a real test pattern, not a blank buffer
    assert source.state == "ended"


@needs_gst
def test_odd_width_rows_are_unpadded():
    """RGB rows of width 75 are padded to 4 bytes by GStreamer; the image must not be skewed."""
    frames = take(open_source("testsrc://?width=75&height=20&fps=30&pattern=white", SourceOptions()), 2)
    assert frames[0].image.shape == (20, 75, 3)
    assert frames[0].image.min() >= 250  # a skewed copy would mix in padding/neighbouring bytes


@needs_gst
def test_stream_end_reconnects_and_bumps_epoch():
    """Each connection of a 4-buffer pipeline ends with EOS: the loop reconnects, epochs count up."""
    opts = SourceOptions(reconnect_initial_s=0.01, reconnect_max_s=0.02)

    def connect(timeout_s):
        return GstAppsinkReader("videotestsrc is-live=true num-buffers=4 ! video/x-raw,width=32,height=24,framerate=60/1")

    frames = take(ReconnectingSource("test://eos", opts, connect), 14)
    assert [f.index for f in frames] == list(range(14))
    assert [f.epoch for f in frames] == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 2


def test_bad_uris_give_one_line_errors():
    cases = {
        "foo://bar": "unknown source scheme 'foo:'",
        "camera:/dev/video97?width=640": "camera device /dev/video97 not found",
        "camera:7": "camera device /dev/video7 not found",
        "synthetic://?sed=3": "unknown parameter 'sed'",
        "synthetic://?fps=fast": "bad value 'fast' for parameter 'fps'",
        "testsrc://?width=-4": "parameter 'width' must be > 0",
        "camera:/dev/video0?width=x": "bad value 'x'",
    }
    for uri, expected in cases.items():
        with pytest.raises(SourceError) as err:
            open_source(uri, SourceOptions())
        assert expected in str(err.value) and "\n" not in str(err.value), uri
    with pytest.raises(SourceError, match="unknown source backend"):
        open_source("testsrc://", SourceOptions(backend="opencv"))


@needs_gst
def test_bad_testsrc_pattern():
    with pytest.raises(SourceError, match="unknown testsrc pattern 'zebra'"):
        open_source("testsrc://?pattern=zebra", SourceOptions())


@needs_rtsp
@pytest.mark.parametrize("backend", ["gstreamer", "pyav"])
def test_dead_rtsp_url_fails_after_the_configured_attempts(free_port, backend):
    opts = SourceOptions(open_timeout_s=1.0, backend=backend, reconnect_attempts=3,
                         reconnect_initial_s=0.05, reconnect_max_s=0.1)
    source = open_source(f"rtsp://127.0.0.1:{free_port}/nothing", opts)
    assert source.state == "connecting"
    with pytest.raises(SourceError) as err:
        next(iter(source.frames()))
    message = str(err.value)
    assert message.startswith(f"cannot connect to rtsp://127.0.0.1:{free_port}/nothing within 1s (3 attempts): ")
    assert "\n" not in message
    assert source.attempts == 3 and source.state == "ended"


@needs_rtsp
@pytest.mark.parametrize("backend", ["gstreamer", pytest.param("pyav", marks=pytest.mark.slow)])
def test_rtsp_source_started_before_its_server_retries_until_it_is_up(free_port, backend):
    """No server at start: the default options keep retrying (state "reconnecting"), frames come once it is up."""
    server = RtspTestServer(free_port, width=160, height=120)
    source = open_source(server.url, SourceOptions(backend=backend, open_timeout_s=2.0))
    assert source.options.reconnect_attempts == 0  # the default retries forever
    seen = {}

    def start_late():
        deadline = time.monotonic() + 5
        while source.state != "reconnecting" and time.monotonic() < deadline:
            time.sleep(0.01)
        seen["state"], seen["error"] = source.state, source.last_error
        time.sleep(1.0)
        seen["attempts"] = source.attempts
        server.start()
        seen["up"] = time.monotonic()

    control = threading.Thread(target=start_late)
    control.start()
    try:
        frames = take(source, 5, timeout_s=20.0)
        seen["first"] = time.monotonic()
    finally:
        control.join()
        server.stop()
    assert seen["state"] == "reconnecting" and seen["error"], seen
    assert seen["attempts"] >= 2  # it really retried while the port was closed
    assert len(frames) == 5 and frames[0].image.shape == (120, 160, 3)
    assert [f.epoch for f in frames] == [0] * 5  # the first connection is epoch 0, however long it took
    assert frames[0].image.std() > 10
    print(f"\nRTSP[{backend}] started late: 5 frames {seen['first'] - seen['up']:.3f}s after the server listened "
          f"({seen['attempts']} attempts while it was down)")


@needs_rtsp
@pytest.mark.parametrize("backend", ["gstreamer", pytest.param("pyav", marks=pytest.mark.slow)])
def test_rtsp_server_restart_reconnects_and_bumps_epoch(free_port, backend):
    with RtspTestServer(free_port, width=320, height=240) as server:
        source = open_source(server.url, SourceOptions(open_timeout_s=8.0, backend=backend))
        t_open = time.monotonic()
        marks = {}
        states = []

        def outage():
            time.sleep(1.0)
            server.stop()
            marks["stopped"] = time.monotonic()
            try:  # the port really closed with the server
                socket.create_connection(("127.0.0.1", free_port), timeout=1).close()
                states.append("port still open")
            except ConnectionRefusedError:
                pass
            deadline = time.monotonic() + 5
            while source.state != "reconnecting" and time.monotonic() < deadline:
                time.sleep(0.02)
            states.append(source.state)
            time.sleep(1.0)  # stay down while the source backs off
            server.start()
            marks["back"] = time.monotonic()

        timer = threading.Timer(25.0, source.close)  # bound the test
        timer.start()
        control = None
        frames = []
        try:
            for frame in source.frames():
                frames.append(frame)
                if len(frames) == 1:
                    marks["first"] = time.monotonic()
                    assert source.state == "connected"
                    control = threading.Thread(target=outage)
                    control.start()
                if frame.epoch == 1:
                    marks["resumed"] = time.monotonic()
                    break
        finally:
            timer.cancel()
            source.close()
            if control is not None:
                control.join()
    assert "resumed" in marks, f"no frame after the server came back (last error: {source.last_error})"
    assert states == ["reconnecting"]
    assert frames[0].image.shape == (240, 320, 3) and frames[0].epoch == 0
    assert [f.index for f in frames] == list(range(len(frames)))  # monotonic across the reconnect
    before = [f for f in frames if f.epoch == 0]
    assert len(before) >= 5 and frames[-1].epoch == 1 and source.epoch == 1
    assert frames[-1].image.std() > 10
    print(f"\nRTSP[{backend}] first frame {marks['first'] - t_open:.3f}s after open; "
          f"resumed {marks['resumed'] - marks['back']:.3f}s after the server returned "
          f"({marks['resumed'] - marks['stopped']:.3f}s after it died)")


@needs_rtsp
def test_rtsp_watchdog_reconnects_a_hung_server(free_port):
    """A frozen server keeps the TCP session open but sends nothing: only the watchdog notices."""
    with RtspTestServer(free_port, width=160, height=120) as server:
        opts = SourceOptions(open_timeout_s=1.0, read_timeout_s=0.8, reconnect_initial_s=0.1, reconnect_max_s=0.5)
        source = open_source(server.url, opts)
        seen = {}

        def freeze():
            server.pause()
            deadline = time.monotonic() + 6
            while source.state != "reconnecting" and time.monotonic() < deadline:
                time.sleep(0.02)
            seen["state"] = source.state
            seen["error"] = source.last_error
            server.resume()

        control = threading.Thread(target=freeze)
        timer = threading.Timer(20.0, source.close)
        timer.start()
        frames = []
        try:
            for frame in source.frames():
                frames.append(frame)
                if len(frames) == 3:
                    control.start()
                if frame.epoch >= 1:
                    break
        finally:
            timer.cancel()
            source.close()
            if control.ident is not None:
                control.join()
    assert seen["state"] == "reconnecting"
    assert seen["error"].startswith("no frame for 0.8s")
    assert frames[-1].epoch == 1
    assert [f.index for f in frames] == list(range(len(frames)))


@needs_rtsp
def test_rtsp_pyav_fallback_reads_frames(free_port):
    with RtspTestServer(free_port, width=160, height=120) as server:
        source = open_source(server.url, SourceOptions(backend="pyav", open_timeout_s=8.0))
        assert source.backend == "pyav"
        frames = take(source, 3)
    assert len(frames) == 3 and frames[0].image.shape == (120, 160, 3)
    assert [f.index for f in frames] == [0, 1, 2]


@_needs("v4l2src")
def test_a_device_that_is_no_camera_fails_within_open_timeout():
    """/dev/null exists but is no V4L2 device: v4l2src really runs and its error is reported."""
    source = open_source("camera:/dev/null?width=640&height=480&fps=30",
                         SourceOptions(open_timeout_s=0.5, reconnect_attempts=1))
    assert source.backend == "gstreamer" and source.fps == 30.0
    with pytest.raises(SourceError) as err:
        next(iter(source.frames()))
    message = str(err.value)
    assert message.startswith("cannot connect to camera:/dev/null") and "v4l2" in message and "\n" not in message


def test_auto_backend_falls_back_to_pyav_without_gstreamer(monkeypatch):
    """Elements missing (the no-gi case runs in real subprocesses: test_sources_gst_optional.py)."""
    import streamseg.sources.gst_reader as gst_reader

    monkeypatch.setattr(gst_reader, "gstreamer_problem", lambda *elements: "GStreamer lacks the element(s) x")
    assert open_source("rtsp://127.0.0.1:9/x", SourceOptions()).backend == "pyav"
    assert open_source("testsrc://?width=32&height=32", SourceOptions()).backend == "pyav"
    with pytest.raises(SourceError, match="rtsp:// needs GStreamer .*: GStreamer lacks the element"):
        open_source("rtsp://127.0.0.1:9/x", SourceOptions(backend="gstreamer"))


def _open_fds() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


@needs_rtsp
@pytest.mark.slow
def test_rtsp_twenty_server_restarts_resume_fast_and_leak_nothing(free_port):
    """20 kills and restarts of a real RTSP server under one source: every epoch arrives, resume
    times (server listening -> first frame of the new epoch) are printed, fds stay flat."""
    import math
    import statistics

    restarts = 20
    downs = [0.3, 1.0, 2.5]  # the longer outages reach the 2 s backoff cap: the probe must cut it short
    with RtspTestServer(free_port, width=160, height=120) as server:
        source = open_source(server.url, SourceOptions())  # the defaults: retry forever, 0.2..2 s backoff
        first_of_epoch: dict[int, float] = {}
        indices = []
        done = threading.Event()

        def consume():
            for frame in source.frames():
                first_of_epoch.setdefault(frame.epoch, time.monotonic())
                indices.append(frame.index)
            done.set()

        reader = threading.Thread(target=consume, daemon=True)
        reader.start()
        guard = threading.Timer(restarts * 10.0, source.close)
        guard.start()
        resume, detect, fds = [], [], []
        back = 0.0  # when the server last came back
        try:
            for epoch in range(restarts + 1):
                deadline = time.monotonic() + 10
                while epoch not in first_of_epoch and time.monotonic() < deadline:
                    time.sleep(0.005)
                assert epoch in first_of_epoch, f"epoch {epoch} never came (last error: {source.last_error})"
                if epoch:
                    resume.append(first_of_epoch[epoch] - back)
                time.sleep(0.3)  # a few frames of this epoch
                fds.append(_open_fds())
                if epoch == restarts:
                    break
                server.stop()
                t_stop = time.monotonic()
                while source.state != "reconnecting" and time.monotonic() < t_stop + 10:
                    time.sleep(0.005)
                detect.append(time.monotonic() - t_stop)
                time.sleep(downs[epoch % len(downs)])
                server.start()
                back = time.monotonic()
        finally:
            guard.cancel()
            source.close()
            done.wait(5)
    assert source.epoch == restarts and source.reconnects == restarts
    assert indices == list(range(len(indices)))  # one frame counter across every reconnect
    assert fds[-1] - fds[1] <= 3, fds  # no fd leak per reconnect (a few of slack for GStreamer threads)

    def figures(xs):
        xs = sorted(xs)
        return (f"median {statistics.median(xs):.3f}s, p95 {xs[math.ceil(0.95 * len(xs)) - 1]:.3f}s, "
                f"max {xs[-1]:.3f}s")

    print(f"\nRTSP {restarts} restarts: resume {figures(resume)}; loss noticed {figures(detect)}; "
          f"fds {fds[0]}..{max(fds)} (end {fds[-1]})")
