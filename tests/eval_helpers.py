"""Builders for small hand-made YouTube-VIS ground truths and results (evaluation tests)."""
from __future__ import annotations

import numpy as np

from streamseg.data.ytvis import Annotation, Category, Video, YtvisDataset, encode_mask
from streamseg.evaluation.results import TubeResult


def rect(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def tube(masks: list[np.ndarray | None]) -> list:
    return [None if m is None else encode_mask(m) for m in masks]


def make_gt(
    videos: list[tuple[int, int, int, int]],  # (video_id, height, width, frames)
    annotations: list[tuple[int, int, list[np.ndarray | None]] | tuple[int, int, list[np.ndarray | None], bool]],
    categories: tuple[str, ...] = ("a", "b"),
) -> YtvisDataset:
    vids = [Video(v, w, h, [f"v{v}/{t:05d}.jpg" for t in range(n)]) for v, h, w, n in videos]
    cats = [Category(i + 1, name) for i, name in enumerate(categories)]
    anns = []
    for i, spec in enumerate(annotations):
        video_id, cat, masks = spec[:3]
        crowd = bool(spec[3]) if len(spec) > 3 else False
        anns.append(Annotation(i + 1, video_id, cat, tube(masks), iscrowd=crowd))
    return YtvisDataset(vids, cats, anns)


def result(video_id: int, cat: int, score: float, masks: list[np.ndarray | None]) -> TubeResult:
    return TubeResult(video_id, cat, score, tube(masks))
