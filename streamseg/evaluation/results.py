"""Results files in the YouTube-VIS benchmark format.

A results file is a JSON list of tubes: ``{"video_id", "category_id", "score", "segmentations"}``
with one COCO RLE (or null, instance absent) per frame of the video -- what the CodaLab servers
of YouTube-VIS / OVIS accept, so files written here can be submitted as they are.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamseg.data.ytvis import DatasetError, Rle, YtvisDataset, read_json_file, rle_to_json, to_rle


@dataclass
class TubeResult:
    video_id: int
    category_id: int
    score: float
    segmentations: list[Rle | None]


def results_to_json(results: list[TubeResult]) -> list[dict[str, Any]]:
    return [
        {
            "video_id": r.video_id,
            "category_id": r.category_id,
            "score": float(r.score),
            "segmentations": [rle_to_json(s) for s in r.segmentations],
        }
        for r in results
    ]


def write_results(path: str | Path, results: list[TubeResult]) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(results_to_json(results)))


def parse_results(data: Any, gt: YtvisDataset, name: str = "results") -> list[TubeResult]:
    """Validate results against the ground truth's videos (ids, frame counts, mask sizes)."""
    if not isinstance(data, list):
        raise DatasetError(f"{name}: a results file must hold a JSON list of tubes")
    videos = {v.id: v for v in gt.videos}
    out = []
    for i, item in enumerate(data):
        where = f"{name}: result {i}"
        try:
            video = videos.get(int(item["video_id"]))
            if video is None:
                raise DatasetError(f"{where} refers to video {item['video_id']}, which is not in the ground truth")
            score = float(item["score"])
            if not math.isfinite(score):
                raise DatasetError(f"{where} has a non-finite score")
            segs = item["segmentations"]
            if not isinstance(segs, list) or len(segs) != video.length:
                raise DatasetError(f"{where} must have one segmentation per frame ({video.length})")
            rles = [to_rle(s, video.height, video.width, f"{where} frame {t}") for t, s in enumerate(segs)]
            out.append(TubeResult(video.id, int(item["category_id"]), score, rles))
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{where} is malformed (missing or bad {exc})") from None
    return out


def read_results(path: str | Path, gt: YtvisDataset) -> list[TubeResult]:
    return parse_results(read_json_file(path, "results file"), gt, str(path))
