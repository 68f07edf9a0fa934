"""File sources on real videos encoded with PyAV: order, count, EOS, looping, pacing, bad files."""
import threading
import time

import numpy as np
import pytest
from sources_helpers import SilentTcpServer, nearest_level, write_numbered_video

from streamseg.errors import SourceError
from streamseg.sources import SourceOptions, open_source


@pytest.fixture(scope="module")
def numbered_mp4(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "numbered.mp4"
    levels = write_numbered_video(str(path), 20, fps=10)
    return str(path), levels


@pytest.mark.parametrize("suffix,codec", [("mp4", "libx264"), ("avi", "mpeg4"), ("mkv", "libx264")])
def test_reads_every_frame_in_order_then_ends(tmp_path, suffix, codec):
    path = tmp_path / f"v.{suffix}"
    levels = write_numbered_video(str(path), 20, width=64, height=48, fps=10, codec=codec)
    source = open_source(str(path), SourceOptions())
    assert not source.live and source.fps == pytest.approx(10.0)
    frames = list(source.frames())  # returning == EOS
    assert source.state == "ended"
    assert len(frames) == 20
    assert [f.index for f in frames] == list(range(20))
    assert [nearest_level(f.image, levels) for f in frames] == list(range(20))
    for f in frames:
        assert f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 and f.image.flags.c_contiguous
        assert f.epoch == 0 and f.truth is None
    pts = [f.pts for f in frames]
    assert pts == sorted(pts) and pts[5] - pts[0] == pytest.approx(0.5, abs=0.01)
    caps = [f.t_capture_ns for f in frames]
    assert caps == sorted(caps) and abs(caps[0] - time.time_ns()) < 60e9


def test_frames_of_a_width_ffmpeg_pads_are_c_contiguous(tmp_path):
    # 160 x 3 = 480 bytes a row: PyAV 18 hands out a view on rows padded to 576
    path = tmp_path / "wide.mp4"
    levels = write_numbered_video(str(path), 4, width=160, height=96, fps=10)
    frames = list(open_source(str(path), SourceOptions()).frames())
    assert [nearest_level(f.image, levels) for f in frames] == list(range(4))
    for f in frames:
        assert f.image.shape == (96, 160, 3) and f.image.flags.c_contiguous


def test_file_uri_and_loop_keep_order_and_increasing_pts(numbered_mp4):
    path, levels = numbered_mp4
    source = open_source("file://" + path, SourceOptions(loop=True))
    got = []
    for f in source.frames():
        got.append(f)
        if len(got) == 45:
            source.close()
    assert len(got) == 45
    assert [nearest_level(f.image, levels) for f in got] == [i % 20 for i in range(45)]
    assert [f.index for f in got] == list(range(45))
    pts = np.array([f.pts for f in got])
    assert np.all(np.diff(pts) > 0)
    assert pts[20] - pts[19] == pytest.approx(0.1, abs=0.01)  # the wrap continues the clock


def test_realtime_paces_frames_by_pts(tmp_path):
    path = tmp_path / "fast.mp4"
    levels = write_numbered_video(str(path), 8, fps=25)
    source = open_source(str(path), SourceOptions(realtime=True))
    assert source.live
    frames = list(source.frames())
    assert [nearest_level(f.image, levels) for f in frames] == list(range(8))
    # never delivered ahead of its pts on the wall clock (a fast-mode read would be ~0.3 s early)
    t0, p0 = frames[0].t_capture_ns, frames[0].pts
    for f in frames[1:]:
        assert (f.t_capture_ns - t0) / 1e9 >= (f.pts - p0) - 0.01


def test_close_from_another_thread_stops_a_realtime_read(numbered_mp4):
    path, _ = numbered_mp4
    source = open_source(path, SourceOptions(realtime=True, loop=True))
    threading.Timer(0.3, source.close).start()
    count = sum(1 for _ in source.frames())  # would run forever without close()
    assert 1 <= count < 20
    assert source.state == "ended"


def test_missing_file_fails_at_open(tmp_path):
    with pytest.raises(SourceError, match="not found") as err:
        open_source(str(tmp_path / "nope.mp4"), SourceOptions())
    assert "\n" not in str(err.value)


def test_corrupt_files_give_a_one_line_error(tmp_path, numbered_mp4):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(open(numbered_mp4[0], "rb").read()[:3000])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for path in (garbage, truncated, empty):
        with pytest.raises(SourceError) as err:
            list(open_source(str(path), SourceOptions()).frames())
        message = str(err.value)
        assert "\n" not in message and str(path) in message


def test_a_truncated_file_yields_what_decodes_then_ends_with_a_warning(tmp_path):
    whole = tmp_path / "whole.mp4"
    levels = write_numbered_video(str(whole), 60, fps=10, faststart=True)  # index first: still opens when cut
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    source = open_source(str(cut), SourceOptions())
    assert source.total_frames == 60 and source.warning is None
    frames = list(source.frames())
    n = len(frames)
    assert 0 < n < 60
    assert [nearest_level(f.image, levels) for f in frames] == list(range(n))  # every frame that was there
    assert source.warning.startswith(f"{cut}: file ended early: {n} frames decoded of 60 expected")
    assert "\n" not in source.warning
    whole_source = open_source(str(whole), SourceOptions())
    assert len(list(whole_source.frames())) == 60 and whole_source.warning is None


def test_a_silent_tcp_server_gives_a_one_line_timeout_error():
    """FFmpeg reports its interrupted wait as "Immediate exit requested"; say what happened instead."""
    with SilentTcpServer() as server:
        url = f"tcp://127.0.0.1:{server.port}"
        with pytest.raises(SourceError) as err:
            open_source(url, SourceOptions(open_timeout_s=0.5))
        assert server.accepted >= 1  # it really connected
    message = str(err.value)
    assert message == f"cannot read video {url}: no data within 0.5s (connected, but the sender is silent)"
