"""The YouTube-VIS annotation format (also used by OVIS and UVO): parse, validate, write.

Torch-free on purpose: the evaluator reads ground truth through this module, and `eval-json`
should not pay for importing torch. Every per-frame segmentation is normalised to a compressed
COCO RLE (pycocotools), whatever the file holds: compressed RLE, uncompressed RLE (list counts),
polygons, or null (instance absent in that frame).
"""
from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from streamseg.errors import ProtocolError, StreamsegError
from streamseg.transport.rle import parse_counts

Rle = dict[str, Any]  # {"size": [h, w], "counts": bytes}


class DatasetError(StreamsegError):
    """A dataset or results file is missing or does not follow the YouTube-VIS format."""


@dataclass
class Video:
    id: int
    width: int
    height: int
    file_names: list[str]  # relative to the dataset's image root, one per frame

    @property
    def length(self) -> int:
        return len(self.file_names)


@dataclass
class Annotation:
    """One instance tube: a segmentation (or None) for every frame of its video."""

    id: int
    video_id: int
    category_id: int
    segmentations: list[Rle | None]
    iscrowd: bool = False
    areas: list[float | None] | None = None  # as stored in the file (the official metric uses them)


@dataclass
class Category:
    id: int
    name: str


@dataclass
class YtvisDataset:
    videos: list[Video]
    categories: list[Category]
    annotations: list[Annotation] = field(default_factory=list)
    path: str | None = None  # the JSON file it came from

    def video(self, video_id: int) -> Video:
        for v in self.videos:
            if v.id == video_id:
                return v
        raise DatasetError(f"video id {video_id} is not in the dataset")

    def annotations_of(self, video_id: int) -> list[Annotation]:
        return [a for a in self.annotations if a.video_id == video_id]

    def category_names(self) -> dict[int, str]:
        return {c.id: c.name for c in self.categories}


# --- segmentations -------------------------------------------------------------------------------


def to_rle(seg: Any, height: int, width: int, where: str = "segmentation") -> Rle | None:
    """Any YouTube-VIS per-frame segmentation -> compressed RLE (None stays None)."""
    if seg is None or (isinstance(seg, list) and len(seg) == 0):
        return None
    if isinstance(seg, list):  # polygons: [[x0, y0, x1, y1, ...], ...]
        if not all(isinstance(p, list) and len(p) % 2 == 0 for p in seg):
            raise DatasetError(f"{where}: polygons must be lists of (x, y) coordinate pairs")
        polys = [[float(c) for c in p] for p in seg if len(p) >= 6]  # < 3 points: no area (seen in real files)
        if not polys:
            return encode_mask(np.zeros((height, width), dtype=bool))
        return _clean(mask_utils.merge(mask_utils.frPyObjects(polys, height, width)))
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        raise DatasetError(f"{where}: expected an RLE dict with 'size' and 'counts', polygons or null")
    size = [int(s) for s in seg["size"]]
    if size != [height, width]:
        raise DatasetError(f"{where}: RLE size {size} does not match the video's {[height, width]}")
    counts = seg["counts"]
    if isinstance(counts, list):  # uncompressed RLE
        _check_list_counts(counts, height, width, where)
        return _clean(mask_utils.frPyObjects({"size": size, "counts": counts}, height, width))
    if isinstance(counts, str):
        try:
            counts = counts.encode("ascii")
        except UnicodeEncodeError:
            raise DatasetError(f"{where}: RLE counts string is not ASCII") from None
    if not isinstance(counts, bytes):
        raise DatasetError(f"{where}: RLE counts must be a string or a list of integers")
    # pycocotools trusts counts: garbage (e.g. "0l") makes its C loops spin forever or read past the end.
    try:
        parse_counts(counts, height, width)
    except ProtocolError as exc:
        raise DatasetError(f"{where}: {exc}") from None
    return {"size": size, "counts": counts}


def _check_list_counts(counts: list[Any], height: int, width: int, where: str) -> None:
    """Uncompressed counts must be non-negative integers covering exactly height*width pixels."""
    if not all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in counts):
        raise DatasetError(f"{where}: RLE counts list must hold integers only")
    if any(c < 0 for c in counts):
        raise DatasetError(f"{where}: RLE counts list holds a negative run length")
    if sum(counts) != height * width:
        raise DatasetError(
            f"{where}: RLE counts cover {sum(counts)} pixels, its size holds {height}x{width}={height * width}")


def _clean(rle: Rle) -> Rle:
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"]}


def encode_mask(mask: np.ndarray) -> Rle:
    """H x W bool -> compressed RLE."""
    return _clean(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))


def encode_crop_in_frame(crop: np.ndarray, mask_box: tuple[int, int, int, int], canvas: np.ndarray) -> Rle:
    """The full-frame RLE of a crop at mask_box (x, y, w, h): pasted into a reusable frame-sized
    ``canvas`` (all False), encoded, and cleared again, so no frame is allocated per instance."""
    x, y, w, h = (int(v) for v in mask_box)
    region = canvas[y:y + h, x:x + w]
    region[...] = crop[:region.shape[0], :region.shape[1]]
    try:
        return encode_mask(canvas)
    finally:
        region[...] = False


def decode_rle(rle: Rle) -> np.ndarray:
    """Compressed RLE -> H x W bool."""
    return mask_utils.decode(rle).astype(bool)


def rle_to_json(rle: Rle | None) -> dict[str, Any] | None:
    if rle is None:
        return None
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


# --- reading -------------------------------------------------------------------------------------


def read_json_file(path: str | Path, what: str) -> Any:
    """A JSON file's content, or a one-line DatasetError naming ``what`` is missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{what} not found: {p}")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{p} is not valid JSON ({exc.__class__.__name__} at {getattr(exc, 'pos', '?')})") from None
    except RecursionError:
        raise DatasetError(f"{p} is nested too deeply to be a {what}") from None


def load_ytvis(path: str | Path) -> YtvisDataset:
    """Read a YouTube-VIS / OVIS / UVO JSON file (annotations optional: test splits have none)."""
    p = Path(path)
    ds = parse_ytvis(read_json_file(p, "annotation file"), str(p))
    ds.path = str(p)
    return ds


def parse_ytvis(data: Any, name: str = "dataset") -> YtvisDataset:
    if not isinstance(data, dict) or "videos" not in data or "categories" not in data:
        raise DatasetError(f"{name}: a YouTube-VIS file needs 'videos' and 'categories'")
    try:
        videos = [
            Video(int(v["id"]), int(v["width"]), int(v["height"]), [str(f) for f in v["file_names"]])
            for v in data["videos"]
        ]
        categories = [Category(int(c["id"]), str(c["name"])) for c in data["categories"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{name}: malformed video or category entry (missing or bad {exc})") from None
    for v in videos:
        if v.width <= 0 or v.height <= 0:
            raise DatasetError(f"{name}: video {v.id} has a non-positive size {v.width}x{v.height}")
    by_id = {v.id: v for v in videos}
    if len(by_id) != len(videos):
        raise DatasetError(f"{name}: duplicate video ids")
    cat_ids = {c.id for c in categories}
    annotations = []
    for i, a in enumerate(data.get("annotations") or []):
        where = f"{name}: annotation {a.get('id', i) if isinstance(a, dict) else i}"
        try:
            video = by_id.get(int(a["video_id"]))
            if video is None:
                raise DatasetError(f"{where} refers to unknown video {a['video_id']}")
            if int(a["category_id"]) not in cat_ids:
                raise DatasetError(f"{where} has unknown category {a['category_id']}")
            segs = a["segmentations"]
            if not isinstance(segs, list) or len(segs) != video.length:
                raise DatasetError(f"{where} must have one segmentation per frame ({video.length})")
            rles = [to_rle(s, video.height, video.width, f"{where} frame {t}") for t, s in enumerate(segs)]
            areas = a.get("areas")
            annotations.append(
                Annotation(
                    id=int(a.get("id", i + 1)),
                    video_id=video.id,
                    category_id=int(a["category_id"]),
                    segmentations=rles,
                    iscrowd=bool(a.get("iscrowd", 0)),
                    areas=list(areas) if isinstance(areas, list) and len(areas) == video.length else None,
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{where} is malformed (missing or bad {exc})") from None
    return YtvisDataset(videos, categories, annotations)


# --- writing -------------------------------------------------------------------------------------


def dataset_to_json(ds: YtvisDataset) -> dict[str, Any]:
    """The JSON form, with areas and boxes filled in the way the benchmark files carry them."""
    videos = [
        {"id": v.id, "width": v.width, "height": v.height, "length": v.length, "file_names": v.file_names}
        for v in ds.videos
    ]
    anns = []
    for a in ds.annotations:
        areas = [None if r is None else float(mask_utils.area(r)) for r in a.segmentations]
        boxes = [None if r is None else [float(x) for x in mask_utils.toBbox(r)] for r in a.segmentations]
        anns.append(
            {
                "id": a.id,
                "video_id": a.video_id,
                "category_id": a.category_id,
                "iscrowd": int(a.iscrowd),
                "segmentations": [rle_to_json(r) for r in a.segmentations],
                "areas": areas,
                "bboxes": boxes,
            }
        )
    cats = [{"id": c.id, "name": c.name, "supercategory": "object"} for c in ds.categories]
    return {"info": {"description": "YouTube-VIS format"}, "videos": videos, "annotations": anns, "categories": cats}


def write_ytvis(path: str | Path, ds: YtvisDataset) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(dataset_to_json(ds)))


# --- locating a dataset on disk ------------------------------------------------------------------


def image_root_for(json_path: str | Path) -> Path:
    """Where the frames of an annotation file live: ``<dir>/JPEGImages`` (this project's layout)
    or ``<dir>/<stem>/JPEGImages`` (the detectron2 layout of YouTube-VIS/OVIS: ``train.json`` beside
    ``train/JPEGImages``)."""
    p = Path(json_path)
    for root in (p.parent / "JPEGImages", p.parent / p.stem / "JPEGImages"):
        if root.is_dir():
            return root
    raise DatasetError(f"no JPEGImages folder for {p} (looked in {p.parent} and {p.parent / p.stem})")


def resolve_annotations(data: str | Path, default_name: str = "valid.json") -> Path:
    """``--data`` may name an annotation JSON or a dataset folder holding ``default_name``."""
    p = Path(data)
    if p.is_dir():
        p = p / default_name
    if not p.is_file():
        raise DatasetError(f"annotation file not found: {p}")
    return p
