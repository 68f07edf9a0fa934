"""Overlay recording: frames with coloured masks, boxes, track ids, labels and scores, to an MP4/MKV.

Drawing and encoding (H.264 by default) run on their own thread behind a bounded queue so a
recording costs the inference loop one queue put; when the queue is full the loop waits (a
recording keeps every frame it was given). How the file is muxed and timed: ``recording.py``. Text is drawn with Pillow's built-in font (no OpenCV): each distinct label string is
rasterised once and cached as an alpha bitmap, then blended with numpy.
"""
from __future__ import annotations

import queue
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.engine.recording import TIME_BASE, FrameClock, as_ticks, container_options, keyframe_due, picture_type_i
from streamseg.errors import StreamsegError
from streamseg.interface import Frame, Tracks

_STOP = object()


def track_colour(track_id: int) -> np.ndarray:
    """A stable, saturated RGB colour per track id (golden-ratio hue walk)."""
    hue = (track_id * 0.618033988749895) % 1.0
    h6 = hue * 6.0
    i = int(h6) % 6
    f = h6 - int(h6)
    v, s = 255.0, 0.85
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=np.float32)


class TextRenderer:
    """Rasterises short strings once with Pillow's default font; returns H x W float alpha in [0, 1]."""

    def __init__(self, size: int = 14, cache_limit: int = 1024) -> None:
        from PIL import ImageFont

        self._font = ImageFont.load_default(size=size)
        self._cache: dict[str, np.ndarray] = {}
        self._cache_limit = cache_limit

    def alpha(self, text: str) -> np.ndarray:
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        from PIL import Image, ImageDraw

        left, top, right, bottom = self._font.getbbox(text)
        img = Image.new("L", (max(1, right - left + 4), max(1, bottom - top + 4)), 0)
        ImageDraw.Draw(img).text((2 - left, 2 - top), text, font=self._font, fill=255)
        out = np.asarray(img, dtype=np.float32) / 255.0
        if len(self._cache) >= self._cache_limit:
            self._cache.clear()
        self._cache[text] = out
        return out


def draw_overlay(image: np.ndarray, tracks: Tracks, text: TextRenderer, alpha: float = 0.45) -> np.ndarray:
    """A copy of ``image`` with every instance's mask tinted, its box outlined and a label drawn."""
    out = image.copy()
    h, w = out.shape[:2]
    a = int(round(alpha * 256))  # integer blend in 8.8 fixed point: 5x faster than float
    placed: list[tuple[int, int, int, int]] = []  # label plates drawn so far (x0, y0, x1, y1)
    for inst in tracks.instances:
        colour = track_colour(inst.track_id)
        x0, y0, x1, y1 = (int(round(v)) for v in inst.box_xyxy)
        x0, y0 = max(0, min(w - 1, x0)), max(0, min(h - 1, y0))
        x1, y1 = max(x0 + 1, min(w, x1)), max(y0 + 1, min(h, y1))
        mx, my, mw, mh = inst.mask_box
        cx0, cy0, cx1, cy1 = max(0, mx), max(0, my), min(w, mx + mw), min(h, my + mh)
        if inst.crop.shape == (mh, mw) and cx1 > cx0 and cy1 > cy0:
            region = out[cy0:cy1, cx0:cx1]  # only the crop's box is touched, never the full frame
            blended = region.astype(np.uint16) * (256 - a)
            blended += (colour * a).astype(np.uint16)
            crop = inst.crop[cy0 - my:cy1 - my, cx0 - mx:cx1 - mx]
            np.copyto(region, (blended >> 8).astype(np.uint8), where=crop[:, :, None])
        c = colour.astype(np.uint8)
        out[y0, x0:x1] = c
        out[y1 - 1, x0:x1] = c
        out[y0:y1, x0] = c
        out[y0:y1, x1 - 1] = c
        _draw_label(out, f"#{inst.track_id} {inst.label} {inst.score:.2f}", x0, y0, colour, text, placed)
    return out


def place_label(x: int, y: int, tw: int, th: int, width: int, height: int,
                placed: list[tuple[int, int, int, int]]) -> tuple[int, int]:
    """Top-left of a tw x th plate for a box whose top-left is (x, y): above the box (or inside it at
    the top edge), moved down a plate at a time past every plate already placed."""
    tx = min(max(0, x), max(0, width - tw))
    ty = y - th if y - th >= 0 else y
    for _ in range(len(placed) + 1):
        hit = [p for p in placed if tx < p[2] and p[0] < tx + tw and ty < p[3] and p[1] < ty + th]
        if not hit:
            break
        ty = max(p[3] for p in hit)
    return tx, max(0, min(ty, height - 1))


def _draw_label(out: np.ndarray, label: str, x: int, y: int, colour: np.ndarray, text: TextRenderer,
                placed: list[tuple[int, int, int, int]]) -> None:
    a = text.alpha(label)
    th, tw = a.shape
    h, w = out.shape[:2]
    tx, ty = place_label(x, y, tw, th, w, h, placed)
    placed.append((tx, ty, tx + tw, ty + th))
    th, tw = min(th, h - ty), min(tw, w - tx)
    if th <= 0 or tw <= 0:
        return
    region = out[ty:ty + th, tx:tx + tw].astype(np.float32)
    region = region * 0.35 + colour * 0.65 * 0.5  # darkened, tinted background plate
    a = a[:th, :tw, None]
    region = region * (1.0 - a) + 255.0 * a  # white text
    out[ty:ty + th, tx:tx + tw] = region.astype(np.uint8)


class OverlayRecorder:
    """Writes overlay frames to an MP4/MOV/MKV (PyAV) from a background thread; ``close()`` finalises it.

    The file plays at every moment (``recording.py``): killed, it keeps all but about the last
    ``fragment_s`` seconds. ``live``: frames are timed by their capture time, else by their pts.
    A failure sets ``error`` (one line) at once; the owner decides whether the run goes on."""

    def __init__(self, path: str | Path, fps: float = 30.0, codec: str = "libx264",
                 alpha: float = 0.45, queue_size: int = 8, live: bool = False, fragment_s: float = 1.0) -> None:
        self.path = Path(path)
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise StreamsegError(f"cannot record to {self.path}: folder {parent} does not exist")
        self.fps = fps if fps > 0 else 30.0
        self.codec = codec
        self.alpha = alpha
        self.fragment_s = fragment_s
        self.clock = FrameClock(live, self.fps)
        self.frames_written = 0
        self.error: str | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None  # (width, height) of the file, fixed by frame 1
        self._text: TextRenderer | None = None
        self._last_ticks: int | None = None
        self._last_key: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"record:{self.path.name}", daemon=True)
        self._thread.start()

    def write(self, frame: Frame, tracks: Tracks) -> None:
        """Queue one frame (blocks while the recorder is behind by a full queue)."""
        if self.error is None:
            self._queue.put((frame, tracks))

    def close(self, timeout: float | None = None) -> None:
        """Flush the encoder and write the trailer."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopped = False
        try:
            self._text = TextRenderer()
            while not stopped:
                item = self._queue.get()
                stopped = item is _STOP
                if not stopped:
                    self._encode(*item)
        except Exception as exc:  # keep the pipeline alive; the engine reports it
            self.error = f"recording to {self.path} failed: {exc}"
        finally:
            try:
                self._finish()  # what was recorded so far stays playable
            except Exception as exc:
                self.error = self.error or f"finalising {self.path} failed: {exc}"
        while not stopped:  # after a failure: take what a waiting write() put, until close()
            stopped = self._queue.get() is _STOP

    def _open(self, image: np.ndarray) -> None:
        import av

        h, w = image.shape[:2]
        self._size = (w - w % 2, h - h % 2)  # yuv420p needs even sizes
        self._container = av.open(str(self.path), mode="w",
                                  options=container_options(self.path.suffix, self.fragment_s))
        stream = self._container.add_stream(self.codec, rate=Fraction(self.fps).limit_denominator(1001))
        stream.width, stream.height = self._size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = TIME_BASE
        stream.codec_context.gop_size = max(1, int(round(self.fps * self.fragment_s)))
        if self.codec == "libx264":
            stream.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "23"}
        self._stream = stream

    def _encode(self, frame: Frame, tracks: Tracks) -> None:
        import av

        if self._container is None:
            self._open(frame.image)
        assert self._text is not None
        drawn = self._fit(draw_overlay(frame.image, tracks, self._text, self.alpha))
        out = av.VideoFrame.from_ndarray(drawn, format="rgb24")
        t = self.clock.seconds(frame)
        self._last_ticks = out.pts = as_ticks(t, self._last_ticks)
        out.time_base = TIME_BASE
        if keyframe_due(t, self._last_key, self.fragment_s):
            out.pict_type = picture_type_i()  # a new fragment: what came before is safe on disk
            self._last_key = t
        self._container.mux(self._stream.encode(out))
        self.frames_written += 1

    def _fit(self, image: np.ndarray) -> np.ndarray:
        """Crop or pad to the file's size (a reconnect may change the source's resolution)."""
        assert self._size is not None
        w, h = self._size
        if image.shape[0] == h and image.shape[1] == w:
            return image
        canvas = np.zeros((h, w, 3), dtype=np.uint8)
        ch, cw = min(h, image.shape[0]), min(w, image.shape[1])
        canvas[:ch, :cw] = image[:ch, :cw]
        return canvas

    def _finish(self) -> None:
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            container.mux(self._stream.encode(None))
        finally:
            container.close()
