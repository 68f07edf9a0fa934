"""The official YouTube-VIS metric (the benchmark's ``YTVOSeval``), reimplemented.

It is COCOeval with one change: the unit is a video-long tube, and IoU is taken over the whole
tube, ``sum_t |d_t & g_t| / sum_t |d_t | g_t|`` (a frame where only one tube is present adds its
area to the union). A tube's area, for the small/medium/large ranges, is the mean of its non-zero
per-frame areas. Everything else follows COCOeval: detections sorted by score with a stable
mergesort, at most maxDets per (video, category), greedy matching per IoU threshold, crowd and
out-of-range ground truth ignored, precision made monotone right to left and read at 101 recall
points.

Crowd tubes: as the benchmark's code, a crowd tube's IoU is the plain tube IoU (crowds are
still ignored and may absorb several detections). ``crowd_rule="coco"`` uses COCO's crowd rule
instead (union replaced by the detection's area, ``sum_t |d_t & g_t| / sum_t |d_t|``), which makes
the metric on one-frame videos exactly COCO's segm evaluation.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from pycocotools import mask as mask_utils

from streamseg.data.ytvis import DatasetError, Rle, YtvisDataset
from streamseg.evaluation.results import TubeResult

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
MAX_DETS = (1, 10, 100)
AREA_RANGES = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 128.0**2),
    "medium": (128.0**2, 256.0**2),
    "large": (256.0**2, 1e5**2),
}
METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@dataclass
class _Tube:
    segs: list[Rle | None]
    areas: list[float]  # per frame, 0 where absent
    avg_area: float
    score: float = 1.0
    ignore: bool = False  # ground truth: crowd
    crowd: bool = False


@dataclass
class _VideoEval:
    dt_scores: np.ndarray  # [D] sorted high first, cut at maxDets[-1]
    dt_matched: np.ndarray  # [T, D] bool
    dt_ignore: np.ndarray  # [T, D] bool
    gt_ignore: np.ndarray  # [G] bool


@dataclass
class VisEvaluation:
    stats: dict[str, float]  # the 12 figures; -1 where no ground truth falls in the setting
    precision: np.ndarray  # [T, R, K, A, M], -1 for absent categories
    recall: np.ndarray  # [T, K, A, M]
    category_ids: list[int] = field(default_factory=list)


def _areas(segs: list[Rle | None]) -> list[float]:
    return [0.0 if s is None else float(mask_utils.area(s)) for s in segs]


def _mean_nonzero(areas: Sequence[float | None]) -> float:
    # The benchmark drops None *and* zero areas before averaging (``if a``).
    present = [a for a in areas if a]
    return float(np.mean(present)) if present else 0.0


def tube_iou(d: list[Rle | None], g: list[Rle | None], crowd: bool = False) -> float:
    """Tube IoU of two per-frame RLE lists (None = absent); ``crowd``: g is a crowd region."""
    return _tube_iou(_Tube(d, _areas(d), 0.0), _Tube(g, _areas(g), 0.0, crowd=crowd), coco_crowd=crowd)


def _tube_iou(d: _Tube, g: _Tube, coco_crowd: bool = False) -> float:
    """Tube IoU over all frames; with ``coco_crowd``, a crowd ground truth's union is the
    detection's area (COCO's rule), otherwise the plain union (the YouTube-VIS evaluator's)."""
    crowd = coco_crowd and g.crowd
    inter = union = 0.0
    for t, (ds, gs) in enumerate(zip(d.segs, g.segs)):
        if ds is not None and gs is not None:
            i = float(mask_utils.area(mask_utils.merge([ds, gs], intersect=True)))
            inter += i
            union += d.areas[t] if crowd else d.areas[t] + g.areas[t] - i
        elif ds is not None:
            union += d.areas[t]
        elif gs is not None and not crowd:
            union += g.areas[t]
    return inter / union if union > 0 else 0.0


def _order_by_score(dts: list[_Tube]) -> np.ndarray:
    return np.argsort([-d.score for d in dts], kind="mergesort")


def _evaluate_video(
    gts: list[_Tube], dts: list[_Tube], ious: np.ndarray, area_rng: tuple[float, float], max_det: int
) -> _VideoEval | None:
    """COCOeval.evaluateImg for one (video, category, area range)."""
    if not gts and not dts:
        return None
    lo, hi = area_rng
    g_ignore = np.array([g.ignore or g.avg_area < lo or g.avg_area > hi for g in gts], dtype=bool)
    gt_order = np.argsort(g_ignore, kind="mergesort")  # regular ground truth first
    gts = [gts[i] for i in gt_order]
    g_ignore = g_ignore[gt_order]
    dt_order = _order_by_score(dts)[:max_det]
    dts = [dts[i] for i in dt_order]
    crowd = [g.crowd for g in gts]
    if ious.size:
        ious = ious[:, gt_order]  # rows are already in score order (see _iou_matrix)
    T, G, D = len(IOU_THRESHOLDS), len(gts), len(dts)
    gt_matched = np.zeros((T, G), dtype=bool)
    dt_matched = np.zeros((T, D), dtype=bool)
    dt_ignore = np.zeros((T, D), dtype=bool)
    if ious.size:
        for ti, thr in enumerate(IOU_THRESHOLDS):
            for di in range(D):
                best = min(thr, 1 - 1e-10)
                m = -1
                for gi in range(G):
                    if gt_matched[ti, gi] and not crowd[gi]:
                        continue  # taken, and only crowds can take several detections
                    if m > -1 and not g_ignore[m] and g_ignore[gi]:
                        break  # matched a regular gt; the rest are ignored ones
                    if ious[di, gi] < best:
                        continue
                    best = ious[di, gi]
                    m = gi
                if m == -1:
                    continue
                dt_ignore[ti, di] = g_ignore[m]
                dt_matched[ti, di] = True
                gt_matched[ti, m] = True
    out_of_range = np.array([d.avg_area < lo or d.avg_area > hi for d in dts], dtype=bool)
    dt_ignore |= ~dt_matched & out_of_range[None, :]
    scores = np.array([d.score for d in dts], dtype=np.float64)
    return _VideoEval(scores, dt_matched, dt_ignore, g_ignore)


def _iou_matrix(gts: list[_Tube], dts: list[_Tube], coco_crowd: bool = False) -> np.ndarray:
    if not gts and not dts:
        return np.zeros((0, 0))
    dts = [dts[i] for i in _order_by_score(dts)][: MAX_DETS[-1]]
    ious = np.zeros((len(dts), len(gts)))
    for i, d in enumerate(dts):
        for j, g in enumerate(gts):
            ious[i, j] = _tube_iou(d, g, coco_crowd)
    return ious


def evaluate(gt: YtvisDataset, results: list[TubeResult], crowd_rule: str = "ytvis") -> VisEvaluation:
    """Score result tubes against a YouTube-VIS ground truth; returns the 12 figures and the curves.
    crowd_rule: "ytvis" (the official evaluator: plain tube IoU) or "coco" (COCO's crowd IoU)."""
    if crowd_rule not in ("ytvis", "coco"):
        raise ValueError(f"crowd_rule must be 'ytvis' or 'coco', got {crowd_rule!r}")
    coco_crowd = crowd_rule == "coco"
    videos = {v.id: v for v in gt.videos}
    vid_ids = sorted(videos)
    cat_ids = sorted({c.id for c in gt.categories})
    cat_set = set(cat_ids)
    gts: dict[tuple[int, int], list[_Tube]] = defaultdict(list)
    dts: dict[tuple[int, int], list[_Tube]] = defaultdict(list)
    for a in gt.annotations:
        areas = _areas(a.segmentations)
        avg = _mean_nonzero(a.areas) if a.areas is not None else _mean_nonzero(areas)
        gts[a.video_id, a.category_id].append(_Tube(a.segmentations, areas, avg, 1.0, a.iscrowd, a.iscrowd))
    for r in results:
        video = videos.get(r.video_id)
        if video is None:
            raise DatasetError(f"result for video {r.video_id}, which is not in the ground truth")
        if len(r.segmentations) != video.length:
            raise DatasetError(f"result for video {r.video_id} has {len(r.segmentations)} frames, not {video.length}")
        if r.category_id not in cat_set:
            continue  # COCOeval only loads detections of the evaluated categories
        areas = _areas(r.segmentations)
        dts[r.video_id, r.category_id].append(_Tube(r.segmentations, areas, _mean_nonzero(areas), r.score))

    ious = {(v, c): _iou_matrix(gts[v, c], dts[v, c], coco_crowd) for v in vid_ids for c in cat_ids}
    ranges = list(AREA_RANGES.values())
    evals = {
        (k, a, i): _evaluate_video(gts[v, c], dts[v, c], ious[v, c], rng, MAX_DETS[-1])
        for k, c in enumerate(cat_ids)
        for a, rng in enumerate(ranges)
        for i, v in enumerate(vid_ids)
    }
    precision, recall = _accumulate(evals, len(cat_ids), len(ranges), len(vid_ids))
    return VisEvaluation(_summarize(precision, recall), precision, recall, cat_ids)


def _accumulate(evals: dict, K: int, A: int, I: int) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.accumulate: pool the videos of each (category, area, maxDets) and build P/R."""
    T, R, M = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(MAX_DETS)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    for k in range(K):
        for a in range(A):
            E = [e for i in range(I) if (e := evals[k, a, i]) is not None]
            if not E:
                continue
            gt_ignore = np.concatenate([e.gt_ignore for e in E])
            n_pos = int(np.count_nonzero(~gt_ignore))
            if n_pos == 0:
                continue
            for m, max_det in enumerate(MAX_DETS):
                scores = np.concatenate([e.dt_scores[:max_det] for e in E])
                order = np.argsort(-scores, kind="mergesort")
                matched = np.concatenate([e.dt_matched[:, :max_det] for e in E], axis=1)[:, order]
                ignored = np.concatenate([e.dt_ignore[:, :max_det] for e in E], axis=1)[:, order]
                tp_sum = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)
                fp_sum = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
                for t in range(T):
                    tp, fp = tp_sum[t], fp_sum[t]
                    rc = tp / n_pos
                    pr = tp / (fp + tp + np.spacing(1))
                    recall[t, k, a, m] = rc[-1] if len(tp) else 0.0
                    # Precision envelope: the max precision at any recall >= this one.
                    pr = np.maximum.accumulate(pr[::-1])[::-1] if len(pr) else pr
                    q = np.zeros(R)
                    idx = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
                    ok = idx < len(pr)
                    q[ok] = pr[idx[ok]]
                    precision[t, :, k, a, m] = q
    return precision, recall


def _summarize(precision: np.ndarray, recall: np.ndarray) -> dict[str, float]:
    areas = list(AREA_RANGES)

    def mean(s: np.ndarray) -> float:
        valid = s[s > -1]
        return float(np.mean(valid)) if valid.size else -1.0

    def ap(thr: float | None = None, area: str = "all", max_det: int = 100) -> float:
        s = precision[..., areas.index(area), MAX_DETS.index(max_det)]
        if thr is not None:
            s = s[np.isclose(IOU_THRESHOLDS, thr)]
        return mean(s)

    def ar(area: str = "all", max_det: int = 100) -> float:
        return mean(recall[..., areas.index(area), MAX_DETS.index(max_det)])

    return {
        "AP": ap(),
        "AP50": ap(0.5),
        "AP75": ap(0.75),
        "APs": ap(area="small"),
        "APm": ap(area="medium"),
        "APl": ap(area="large"),
        "AR1": ar(max_det=1),
        "AR10": ar(max_det=10),
        "AR100": ar(),
        "ARs": ar("small"),
        "ARm": ar("medium"),
        "ARl": ar("large"),
    }


def format_stats(stats: dict[str, float]) -> str:
    """The benchmark's 12-line summary."""
    rows = [
        ("Average Precision", "AP", "0.50:0.95", "all", 100),
        ("Average Precision", "AP50", "0.50", "all", 100),
        ("Average Precision", "AP75", "0.75", "all", 100),
        ("Average Precision", "APs", "0.50:0.95", "small", 100),
        ("Average Precision", "APm", "0.50:0.95", "medium", 100),
        ("Average Precision", "APl", "0.50:0.95", "large", 100),
        ("Average Recall", "AR1", "0.50:0.95", "all", 1),
        ("Average Recall", "AR10", "0.50:0.95", "all", 10),
        ("Average Recall", "AR100", "0.50:0.95", "all", 100),
        ("Average Recall", "ARs", "0.50:0.95", "small", 100),
        ("Average Recall", "ARm", "0.50:0.95", "medium", 100),
        ("Average Recall", "ARl", "0.50:0.95", "large", 100),
    ]
    return "\n".join(
        f" {title:<18} ({key:>5}) @[ IoU={iou:<9} | area={area:>6s} | maxDets={md:>3d} ] = {stats[key]:0.3f}"
        for title, key, iou, area, md in rows
    )
