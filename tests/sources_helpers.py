"""Test helpers for sources: a real RTSP server on 127.0.0.1 and small video-file writers.

The RTSP server runs GstRtspServer in a child process (this file run as a script), so stop() is a
real server death: the process exits and the OS closes the listening port and every client
session, exactly what a camera or NVR going away looks like to the reader. restart() starts a new
server on the same port.

    with RtspTestServer(port) as server:      # server.url == "rtsp://127.0.0.1:<port>/test"
        ...; server.stop(); ...; server.restart()
"""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np


class RtspTestServer:
    """videotestsrc → x264 (zerolatency) → RTSP on 127.0.0.1:``port``/``path``, in a child process."""

    def __init__(self, port: int, path: str = "/test", width: int = 320, height: int = 240, fps: int = 30,
                 pattern: str = "ball"):
        self.port = port
        self.path = path
        self.width, self.height, self.fps, self.pattern = width, height, fps, pattern
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    def start(self, timeout_s: float = 10.0) -> None:
        """Start serving; returns when the port accepts connections."""
        if self._proc is not None:
            raise RuntimeError("RTSP test server already running")
        args = [sys.executable, __file__, str(self.port), self.path, str(self.width), str(self.height),
                str(self.fps), self.pattern]
        self._log = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty server never blocks
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._log.seek(0)
                err = self._log.read()
                self._log.close()
                self._proc = None
                raise RuntimeError(f"RTSP test server exited: {err.strip()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"RTSP test server did not listen on port {self.port} within {timeout_s}s")

    def stop(self) -> None:
        """Kill the server: the port and all its sessions close."""
        if self._proc is None:
            return
        self._proc.send_signal(signal.SIGCONT)  # in case it was paused
        self._proc.kill()
        self._proc.wait(timeout=10)
        self._log.close()
        self._proc = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but no data flows (a hung camera)."""
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._proc.send_signal(signal.SIGCONT)

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        if down_s > 0:
            time.sleep(down_s)
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> "RtspTestServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _serve(port: int, path: str, width: int, height: int, fps: int, pattern: str) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={width},height={height},"
        f"framerate={fps}/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
        f"! rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory(path, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    GLib.MainLoop().run()


def write_numbered_video(path: str, n: int, width: int = 64, height: int = 48, fps: int = 10,
                         codec: str = "libx264", faststart: bool = False) -> list[int]:
    """Encode ``n`` frames where frame i is a flat grey of level ``levels[i]``; returns the levels.

    Flat frames survive lossy coding almost exactly, so a reader's frame i can be identified by
    its mean brightness (levels are 8 apart). ``faststart``: the MP4 index goes first, so a
    truncated copy still opens and decodes up to where it was cut.
    """
    import av

    levels = [(16 + 8 * i) % 240 for i in range(n)]
    with av.open(path, "w", options={"movflags": "+faststart"} if faststart else None) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "qp": "0"}
        for level in levels:
            image = np.full((height, width, 3), level, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return levels


class SilentTcpServer:
    """A loopback TCP server that accepts connections and never sends a byte (a hung encoder)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(4)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:  # timeout: look at the stop flag again
                continue
            self._conns.append(conn)
            self.accepted += 1

    def __enter__(self) -> "SilentTcpServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._conns:
            conn.close()
        self._sock.close()


def nearest_level(image: np.ndarray, levels: list[int]) -> int:
    """Index of the level closest to the image's mean brightness."""
    return int(np.argmin([abs(float(image.mean()) - lv) for lv in levels]))


if __name__ == "__main__":
    _port, _path, _w, _h, _fps, _pattern = sys.argv[1:7]
    _serve(int(_port), _path, int(_w), int(_h), int(_fps), _pattern)
