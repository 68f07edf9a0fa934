"""``run --save-json`` / ``--save-rle``: the engine's output written to files as frames go.

Both writers see every published frame through :class:`ResultsTee`, a MessageSink that forwards to
the real publisher first, so the engine loop needs no hook of its own.

* :class:`RleLogWriter` (``--save-rle``): one JSON line per instance per frame (stream, frame_index,
  track id, class id, label, score, box_xyxy, mask_box, COCO RLE counts of the crop), flushed every
  frame; nothing is held in memory.
* :class:`YtvisWriter` (``--save-json``): YouTube-VIS results (what ``streamseg eval-json`` reads).
  The format needs, per track, one full-frame RLE per frame *of the whole video*, which is known only
  at the stream's end. Trade-off: the RLEs of the tracks still alive are held in memory; a track
  absent for ``end_after`` frames is spilled to a side file (``FILE.part``) and dropped from memory;
  at the stream's EOS its tubes are padded with nulls to the stream's length and appended to FILE.
  FILE is a valid JSON list once the run ends (``[`` is written at the start, ``]`` at the close).
  ``video_id`` = 1, 2, ... in the order streams first publish; ``category_id`` = vocabulary index + 1
  (a ground truth whose categories list the vocabulary's names in order matches it); prompted
  targets (no class) are not written.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol

import numpy as np

from streamseg.data.ytvis import encode_crop_in_frame, rle_to_json
from streamseg.interface import Frame, Tracks, Vocabulary
from streamseg.transport.rle import encode_crop


class FrameWriter(Protocol):
    def add_frame(self, stream: str, frame: Frame, tracks: Tracks, vocab: Vocabulary) -> None: ...

    def end_stream(self, stream: str) -> None: ...

    def close(self) -> None: ...


class ResultsTee:
    """A MessageSink: the real publisher, plus every seg/EOS handed to the writers."""

    def __init__(self, inner: Any, writers: list[FrameWriter]) -> None:
        self._inner = inner
        self._writers = writers

    def __getattr__(self, name: str) -> Any:  # dropped, last_encode_ms, address, ... of the publisher
        return getattr(self._inner, name)

    def publish_seg(self, stream: str, seq: int, epoch: int, frame: Frame, tracks: Tracks,
                    vocab: Vocabulary, t_publish_ns: int | None = None) -> bool:
        ok = self._inner.publish_seg(stream, seq, epoch, frame, tracks, vocab, t_publish_ns)
        for w in self._writers:
            w.add_frame(stream, frame, tracks, vocab)
        return ok

    def publish_status(self, stream: str, status: Mapping[str, Any]) -> bool:
        return self._inner.publish_status(stream, status)

    def publish_eos(self, stream: str, epoch: int, seq: int, reason: str) -> bool:
        ok = self._inner.publish_eos(stream, epoch, seq, reason)
        for w in self._writers:
            w.end_stream(stream)
        return ok

    def close_writers(self) -> None:
        for w in self._writers:
            w.close()


class RleLogWriter:
    """JSON lines, one per instance per frame (the wire's field names)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f = self.path.open("w", encoding="utf-8")

    def add_frame(self, stream: str, frame: Frame, tracks: Tracks, vocab: Vocabulary) -> None:
        for inst in tracks.instances:
            x, y, w, h = (int(v) for v in inst.mask_box)
            self._f.write(json.dumps({
                "stream": stream, "frame_index": int(frame.index), "id": int(inst.track_id),
                "class_id": int(inst.class_id), "label": str(inst.label), "score": round(float(inst.score), 5),
                "box_xyxy": [round(float(v), 2) for v in inst.box_xyxy], "mask_box": [x, y, w, h],
                "counts": encode_crop(inst.crop).decode("ascii"),
            }) + "\n")
        self._f.flush()

    def end_stream(self, stream: str) -> None:
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()


@dataclass
class _OpenTrack:
    start: int  # stream-local frame number of its first mask
    segs: list[dict[str, Any] | None] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    votes: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))

    def tube(self) -> dict[str, Any]:
        # Majority class over its frames; a tie goes to the larger summed score (as streamseg eval).
        cat = max(self.votes, key=lambda c: (len(self.votes[c]), sum(self.votes[c]), -c))
        return {"start": self.start, "category_id": cat + 1, "score": float(np.mean(self.scores)),
                "segs": self.segs}


@dataclass
class _StreamTubes:
    video_id: int
    frames: int = 0
    open: dict[int, _OpenTrack] = field(default_factory=dict)
    canvas: np.ndarray | None = None
    spilled: int = 0


class YtvisWriter:
    """YouTube-VIS results, one video per stream (see the module docstring for what is held)."""

    def __init__(self, path: str | Path, end_after: int = 30) -> None:
        self.path = Path(path)
        self.end_after = end_after
        self._out = self.path.open("w", encoding="utf-8")
        self._out.write("[")
        self._first = True
        self._part_path = self.path.with_name(self.path.name + ".part")
        self._part = self._part_path.open("w+", encoding="utf-8")
        self._streams: dict[str, _StreamTubes] = {}

    def add_frame(self, stream: str, frame: Frame, tracks: Tracks, vocab: Vocabulary) -> None:
        st = self._streams.get(stream)
        if st is None:
            st = self._streams[stream] = _StreamTubes(video_id=len(self._streams) + 1)
        if st.canvas is None or st.canvas.shape != (frame.height, frame.width):
            st.canvas = np.zeros((frame.height, frame.width), dtype=bool)
        t = st.frames
        for inst in tracks.instances:
            if inst.target or inst.class_id < 0:
                continue
            tr = st.open.get(inst.track_id)
            if tr is None:
                tr = st.open[inst.track_id] = _OpenTrack(start=t)
            tr.segs.extend([None] * (t - tr.start - len(tr.segs)))  # absent in between
            tr.segs.append(rle_to_json(encode_crop_in_frame(inst.crop, inst.mask_box, st.canvas)))
            tr.scores.append(float(inst.score))
            tr.votes[int(inst.class_id)].append(float(inst.score))
        st.frames += 1
        for tid in [tid for tid, tr in st.open.items() if st.frames - (tr.start + len(tr.segs)) > self.end_after]:
            self._spill(stream, st.open.pop(tid))

    def _spill(self, stream: str, tr: _OpenTrack) -> None:
        self._part.write(json.dumps({"stream": stream, **tr.tube()}) + "\n")
        self._streams[stream].spilled += 1

    def end_stream(self, stream: str) -> None:
        st = self._streams.pop(stream, None)
        if st is None:
            return
        for tr in st.open.values():
            self._spill_final(st, tr.tube())
        if st.spilled:
            self._part.flush()
            self._part.seek(0)
            keep = []
            for line in self._part:
                item = json.loads(line)
                if item["stream"] == stream:
                    self._spill_final(st, item)
                else:
                    keep.append(line)
            self._part.seek(0)
            self._part.truncate()
            self._part.writelines(keep)
        self._out.flush()

    def _spill_final(self, st: _StreamTubes, item: dict[str, Any]) -> None:
        segs = [None] * item["start"] + item["segs"]
        segs += [None] * (st.frames - len(segs))
        self._out.write(("" if self._first else ",\n") + json.dumps(
            {"video_id": st.video_id, "category_id": item["category_id"], "score": item["score"],
             "segmentations": segs}))
        self._first = False

    def close(self) -> None:
        for stream in list(self._streams):
            self.end_stream(stream)
        if not self._out.closed:
            self._out.write("]\n")
            self._out.close()
        if not self._part.closed:
            self._part.close()
            self._part_path.unlink(missing_ok=True)

