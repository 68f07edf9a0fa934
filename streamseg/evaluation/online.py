"""Online evaluation: run a Segmenter frame by frame over each video, turn its tracks into tubes.

The segmenter sees every video exactly as a live stream (fresh state, one frame at a time, no
look-ahead), so the score measures the streaming system, tracker included. Each track id becomes
one result tube: its per-frame masks (null where the track is absent), score = mean of its
per-frame scores, category = its majority class, mapped from vocabulary names to the dataset's
category ids by name.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from streamseg.data.frames import read_rgb
from streamseg.data.ytvis import (
    Annotation,
    DatasetError,
    Rle,
    Video,
    YtvisDataset,
    decode_rle,
    encode_crop_in_frame,
)
from streamseg.evaluation.results import TubeResult
from streamseg.interface import Frame, Segmenter, TruthInstance, Vocabulary


@dataclass
class OnlineRun:
    results: list[TubeResult]
    videos: list[int]  # ids of the videos run (the ground truth to score against is restricted to them)
    frames: int = 0
    step_seconds: float = 0.0  # time inside segmenter.step only (no JPEG decoding, no RLE encoding)
    component_ms: dict[str, float] = field(default_factory=dict)  # summed Tracks.timings_ms

    @property
    def ms_per_frame(self) -> float:
        return 1000.0 * self.step_seconds / max(self.frames, 1)


@dataclass
class _Track:
    segs: list[Rle | None]
    scores: list[float] = field(default_factory=list)
    votes: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))  # category -> scores

    def to_result(self, video_id: int) -> TubeResult:
        # Majority class over the frames; a tie goes to the class with the larger summed score.
        cat = max(self.votes, key=lambda c: (len(self.votes[c]), sum(self.votes[c]), -c))
        return TubeResult(video_id, cat, float(np.mean(self.scores)), self.segs)


def _truth(annotations: list[Annotation], t: int, class_index: dict[int, int], names: list[str]) -> list[TruthInstance]:
    out = []
    for a in annotations:
        rle = a.segmentations[t]
        if rle is None or a.iscrowd or a.category_id not in class_index:
            continue
        k = class_index[a.category_id]
        out.append(TruthInstance(a.id, k, names[k], decode_rle(rle)))
    return out



def run_video(
    segmenter: Segmenter,
    vocabulary: Vocabulary,
    video: Video,
    image_root: Path,
    name_to_category: dict[str, int],
    truth: list[Annotation] | None = None,
) -> tuple[list[TubeResult], int, float, dict[str, float]]:
    """One video as one stream. ``truth`` (test doubles only) is attached to each Frame."""
    state = segmenter.init_state(vocabulary)
    tracks: dict[int, _Track] = {}
    names = list(vocabulary.names)
    class_index = {name_to_category[n]: k for k, n in enumerate(names) if n in name_to_category}
    seconds = 0.0
    canvas = np.zeros((video.height, video.width), dtype=bool)  # one frame buffer per video, reused
    components: dict[str, float] = defaultdict(float)
    for t, rel in enumerate(video.file_names):
        image = read_rgb(image_root / rel)
        if image.shape[:2] != (video.height, video.width):
            raise DatasetError(f"frame {rel} is {image.shape[1]}x{image.shape[0]}, the JSON says {video.width}x{video.height}")
        frame = Frame(image=image, index=t, pts=None, t_capture_ns=time.time_ns(),
                      truth=_truth(truth, t, class_index, names) if truth is not None else None)
        t0 = time.perf_counter()
        out = segmenter.step(state, frame)
        seconds += time.perf_counter() - t0
        for key, ms in out.timings_ms.items():
            components[key] += ms
        for inst in out.instances:
            label = inst.label if inst.label in name_to_category else (
                names[inst.class_id] if 0 <= inst.class_id < len(names) else None)
            if label not in name_to_category or not inst.crop.any():
                continue
            track = tracks.setdefault(inst.track_id, _Track([None] * video.length))
            track.segs[t] = encode_crop_in_frame(inst.crop, inst.mask_box, canvas)
            track.scores.append(float(inst.score))
            track.votes[name_to_category[label]].append(float(inst.score))
    results = [tr.to_result(video.id) for _, tr in sorted(tracks.items())]
    return results, video.length, seconds, dict(components)


def run_online(
    segmenter: Segmenter,
    gt: YtvisDataset,
    image_root: str | Path,
    vocabulary: Vocabulary,
    max_videos: int | None = None,
    attach_truth: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> OnlineRun:
    """Run ``segmenter`` over (the first ``max_videos``) videos of ``gt``; collect result tubes.

    ``vocabulary.names`` should be the dataset's category names (a name the dataset does not know
    cannot be scored and is dropped). ``attach_truth`` hands the ground truth to the frames, for
    the ground-truth test double only.
    """
    name_to_category = {c.name: c.id for c in gt.categories}
    videos = gt.videos[: max_videos] if max_videos else gt.videos
    run = OnlineRun([], [v.id for v in videos])
    components: dict[str, float] = defaultdict(float)
    for i, video in enumerate(videos):
        anns = gt.annotations_of(video.id) if attach_truth else None
        results, frames, seconds, comp = run_video(segmenter, vocabulary, video, Path(image_root), name_to_category, anns)
        run.results.extend(results)
        run.frames += frames
        run.step_seconds += seconds
        for k, v in comp.items():
            components[k] += v
        if progress:
            progress(i + 1, len(videos))
    run.component_ms = {k: v / max(run.frames, 1) for k, v in components.items()}
    return run


def restrict(gt: YtvisDataset, video_ids: list[int]) -> YtvisDataset:
    """The ground truth of some videos only (``--max-videos``)."""
    keep = set(video_ids)
    return YtvisDataset(
        [v for v in gt.videos if v.id in keep], gt.categories,
        [a for a in gt.annotations if a.video_id in keep], gt.path,
    )
