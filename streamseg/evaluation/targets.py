"""``streamseg eval-targets``: semi-supervised VOS / point-exemplar tracking on a YouTube-VIS-format set.

Every object of every video is prompted on its first visible frame, or on its first frame showing
at least ``min_prompt_area`` pixels of it (its mask, its box, or one point: the mask pixel farthest
from the mask's border) and tracked online to the end of the
video, as a live stream would. Scored with DAVIS's J and F on every frame after the prompt frame
(frames where the object is absent count too: an empty prediction scores 1 there), per object,
then averaged over objects (DAVIS's dataset mean); decay is DAVIS's first-quarter minus
last-quarter mean.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pycocotools import mask as mask_utils
from scipy.ndimage import distance_transform_edt

from streamseg.data.frames import read_rgb
from streamseg.data.ytvis import YtvisDataset, decode_rle
from streamseg.evaluation.breakdown import FRAME_AREAS  # COCO's area ranges
from streamseg.evaluation.davis import boundary_f, region_j, statistics
from streamseg.interface import Frame, Vocabulary

PROMPT_KINDS = ("mask", "box", "point")


def interior_point(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) of the mask pixel farthest from the background (first such pixel in raster order)."""
    dist = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(x), float(y)


def prompt_kwargs(mask: np.ndarray, kind: str) -> dict:
    if kind == "mask":
        return {"mask": mask}
    if kind == "box":
        ys, xs = np.nonzero(mask)
        return {"box": (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))}
    return {"points": [interior_point(mask)]}


@dataclass
class TargetScores:
    objects: list[dict] = field(default_factory=list)  # per object: video, id, J/F statistics
    frames: int = 0
    step_seconds: float = 0.0

    def _by_prompt_area(self) -> dict[str, dict[str, float]]:
        """J&F of the objects whose prompt mask was small / medium / large (COCO's ranges): an object
        prompted as it enters the view gives a sliver, no more telling than a point."""
        out = {}
        for name, (lo, hi) in FRAME_AREAS.items():
            group = [o for o in self.objects if lo <= o["prompt_area"] < hi]
            jf = float(np.mean([(o["J"]["mean"] + o["F"]["mean"]) / 2 for o in group])) if group else -1.0
            out[name] = {"objects": len(group), "J&F": jf}
        return out

    def summary(self) -> dict:
        if not self.objects:
            return {"objects": 0, "J": 0.0, "F": 0.0, "J&F": 0.0}
        def mean(key: str, stat: str) -> float:
            return float(np.mean([o[key][stat] for o in self.objects]))
        j, f = mean("J", "mean"), mean("F", "mean")
        bins = np.mean([[(a + b) / 2 for a, b in zip(o["J"]["bins"], o["F"]["bins"])] for o in self.objects], 0)
        return {"objects": len(self.objects), "J": j, "F": f, "J&F": (j + f) / 2,
                "J_recall": mean("J", "recall"), "F_recall": mean("F", "recall"),
                "J_decay": mean("J", "decay"), "F_decay": mean("F", "decay"),
                "J&F_by_quarter": [float(b) for b in bins],
                "J&F_by_prompt_area": self._by_prompt_area(),
                "frames": self.frames, "ms_per_frame": 1000.0 * self.step_seconds / max(self.frames, 1)}


def evaluate_targets(segmenter, gt: YtvisDataset, image_root: str | Path, kind: str, vocabulary: Vocabulary,
                     max_videos: int | None = None,
                     progress: Callable[[int, int], None] | None = None, min_prompt_area: int = 0) -> TargetScores:
    """``min_prompt_area``: prompt on the first frame with at least that many pixels of the object
    (0: its first visible frame); objects that never show as much are left out."""
    if kind not in PROMPT_KINDS:
        raise ValueError(f"prompt kind must be one of {', '.join(PROMPT_KINDS)}")
    scores = TargetScores()
    videos = gt.videos[:max_videos] if max_videos else gt.videos
    least = max(1, min_prompt_area)
    for n, video in enumerate(videos):
        anns = [a for a in gt.annotations_of(video.id) if not a.iscrowd]
        areas = {a.id: [0 if s is None else int(mask_utils.area(s)) for s in a.segmentations] for a in anns}
        first: dict[int, Any] = {a.id: next((t for t, px in enumerate(areas[a.id]) if px >= least), None)
                                 for a in anns}
        anns = [a for a in anns if first[a.id] is not None and first[a.id] < video.length - 1]
        state = segmenter.init_state(vocabulary)
        track_of: dict[int, int] = {}
        per_obj: dict[int, tuple[list[float], list[float]]] = {a.id: ([], []) for a in anns}
        for t, rel in enumerate(video.file_names):
            image = read_rgb(Path(image_root) / rel)
            gts = {a.id: (decode_rle(a.segmentations[t]) if a.segmentations[t] is not None  # type: ignore[arg-type]
                          else np.zeros((video.height, video.width), bool)) for a in anns}
            for a in anns:
                if first[a.id] == t:  # prompt on the first visible frame: applies to this frame
                    track_of[a.id] = segmenter.add_target(state, name=f"obj{a.id}", **prompt_kwargs(gts[a.id], kind))
            t0 = time.perf_counter()
            tracks = segmenter.step(state, Frame(image=image, index=t, pts=None, t_capture_ns=time.time_ns()))
            scores.step_seconds += time.perf_counter() - t0
            scores.frames += 1
            masks = {i.track_id: i.full_mask(video.height, video.width) for i in tracks.instances if i.target}
            for a in anns:
                if first[a.id] is None or t <= first[a.id]:
                    continue  # the prompt frame itself is given, not scored (as DAVIS)
                pred = masks.get(track_of[a.id], np.zeros_like(gts[a.id]))
                per_obj[a.id][0].append(region_j(pred, gts[a.id]))
                per_obj[a.id][1].append(boundary_f(pred, gts[a.id]))
        for a in anns:
            js, fs = per_obj[a.id]
            if js:
                scores.objects.append({"video": video.id, "object": a.id, "J": statistics(np.array(js)),
                                       "F": statistics(np.array(fs)), "prompt_frame": first[a.id],
                                       "prompt_area": areas[a.id][first[a.id]]})
        if progress:
            progress(n + 1, len(videos))
    return scores
