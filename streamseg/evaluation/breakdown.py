"""Where the AP goes: per-frame masks or association (``eval --breakdown``).

Tube AP mixes two failures: an object not segmented on a frame, and an object segmented on every
frame but split over several tracks. This separates them:
  frame recall   the share of ground-truth object-frames that some result mask on that frame
                 (of any tube, any class) covers with IoU >= 0.5, overall and by the object's
                 area on that frame (COCO's image ranges: small < 32^2, medium < 96^2, large);
  fragments      per object, how many result tubes carry it in turn: its covering tube
                 (IoU >= 0.5) stays the same while it still covers, else the best one does;
  ID switches    per object, how often the covering tube changes (a duplicate that covers
                 beside it is neither a fragment nor a switch);
  stitched AP    the AP after merging, for each object, the tubes that cover it on most of their
                 covered frames into one tube (per frame the union of their masks, their mean
                 score, the class of the best-scoring one): what perfect association would give
                 with these masks. Stitched AP close to AP means the masks, not the tracker, are
                 what is missing.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from streamseg.data.ytvis import Rle, YtvisDataset
from streamseg.evaluation.results import TubeResult
from streamseg.evaluation.ytvis import evaluate

FRAME_AREAS = {"small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, float("inf"))}
COVER_IOU = 0.5


def _frame_ious(dts: list[Rle | None], gts: list[Rle | None]) -> np.ndarray:
    """(D, G) IoU on one frame; 0 where either is absent."""
    out = np.zeros((len(dts), len(gts)))
    di = [i for i, d in enumerate(dts) if d is not None]
    gi = [j for j, g in enumerate(gts) if g is not None]
    if di and gi:
        ious = mask_utils.iou([dts[i] for i in di], [gts[j] for j in gi], [0] * len(gi))
        out[np.ix_(di, gi)] = np.asarray(ious).reshape(len(di), len(gi))
    return out


def _union(segs: list[Rle | None]) -> Rle | None:
    present = [s for s in segs if s is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else mask_utils.merge(present, intersect=False)


def breakdown(gt: YtvisDataset, results: list[TubeResult]) -> dict[str, Any]:
    by_video: dict[int, list[TubeResult]] = defaultdict(list)
    for r in results:
        by_video[r.video_id].append(r)
    covered = total = 0
    by_area = {k: [0, 0] for k in FRAME_AREAS}  # covered, total
    fragments: list[int] = []
    switches = 0
    stitched: list[TubeResult] = []
    for video in gt.videos:
        anns = [a for a in gt.annotations_of(video.id) if not a.iscrowd]
        dts = by_video.get(video.id, [])
        # the covering tube per (object, frame): the previous one while it still covers, else
        # the best one reaching COVER_IOU; -1 if none does
        cover = np.full((len(anns), video.length), -1)
        last = np.full(len(anns), -1)
        frames_covered = np.zeros((len(dts), len(anns)), dtype=int)
        for t in range(video.length):
            g_segs = [a.segmentations[t] for a in anns]
            ious = _frame_ious([d.segmentations[t] for d in dts], g_segs)
            for j, seg in enumerate(g_segs):
                if seg is None or not mask_utils.area(seg):
                    continue
                area = float(mask_utils.area(seg))
                best = int(np.argmax(ious[:, j])) if dts else -1
                hit = best >= 0 and ious[best, j] >= COVER_IOU
                total += 1
                covered += hit
                for name, (lo, hi) in FRAME_AREAS.items():
                    if lo <= area < hi:
                        by_area[name][0] += hit
                        by_area[name][1] += 1
                if hit:
                    keep = last[j] >= 0 and ious[last[j], j] >= COVER_IOU
                    cover[j, t] = last[j] = last[j] if keep else best
                    frames_covered[best, j] += 1
        for j in range(len(anns)):
            seq = cover[j][cover[j] >= 0]
            fragments.append(len(set(seq.tolist())))
            switches += int((seq[1:] != seq[:-1]).sum())
        owner = {i: int(np.argmax(frames_covered[i])) for i in range(len(dts)) if frames_covered[i].any()}
        groups: dict[int, list[int]] = defaultdict(list)
        for i, j in owner.items():
            groups[j].append(i)
        stitched.extend(d for i, d in enumerate(dts) if i not in owner)
        for members in groups.values():
            tubes = [dts[i] for i in members]
            best_tube = max(tubes, key=lambda d: d.score)
            segs = [_union([d.segmentations[t] for d in tubes]) for t in range(video.length)]
            stitched.append(TubeResult(video.id, best_tube.category_id, float(np.mean([d.score for d in tubes])), segs))
    ap = evaluate(gt, results).stats
    st = evaluate(gt, stitched).stats
    return {
        "frame_recall": covered / total if total else -1.0,
        "frame_recall_by_area": {k: (c / n if n else -1.0) for k, (c, n) in by_area.items()},
        "object_frames": total,
        "objects": len(fragments),
        "fragments_per_object": float(np.mean(fragments)) if fragments else 0.0,
        "objects_never_covered": int(sum(1 for f in fragments if f == 0)),
        "id_switches": switches,
        "AP": ap["AP"],
        "stitched_AP": st["AP"],
        "stitched_AP50": st["AP50"],
        "stitched_AR10": st["AR10"],
    }


def format_breakdown(b: dict[str, Any]) -> str:
    area = "  ".join(f"{k} {v:.3f}" if v >= 0 else f"{k} -" for k, v in b["frame_recall_by_area"].items())
    return "\n".join([
        f"frame recall (IoU >= {COVER_IOU}): {b['frame_recall']:.3f} of {b['object_frames']} object-frames"
        f"  by area: {area}",
        f"objects {b['objects']}: {b['fragments_per_object']:.2f} covering tubes each, "
        f"{b['objects_never_covered']} never covered, {b['id_switches']} ID switches",
        f"AP {b['AP']:.3f}; with each object's fragments stitched into one tube: AP {b['stitched_AP']:.3f} "
        f"(AP50 {b['stitched_AP50']:.3f}, AR10 {b['stitched_AR10']:.3f})",
    ])
