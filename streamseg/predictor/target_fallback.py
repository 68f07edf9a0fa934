"""A target whose own query lost its object borrows the vocabulary track it was following.

A target prompted on a sliver (an object entering the view) often loses it within a few frames:
its query then decodes nothing, and nothing brings it back, while a class query of the vocabulary
picks the same object up once it has grown (on the tuning seed 4, in a quarter of the frames where
a mask-prompted object was in view the target showed nothing, and a class track covered the
object with IoU >= 0.5 in three quarters of those). So each target keeps a link to the class
track its shown mask coincides with; on a frame where it shows nothing it shows that track's mask
under its own ID, and when that track is gone, the shown class track overlapping the target's last
mask most (one not linked to another target). Everything here works on the network's
low-resolution masks ((h, w) bool), and only class tracks shown this frame count.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

LINK_IOU = 0.3  # a class track this close to the target's shown mask becomes its link (0.1-0.5 tied)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else 0.0


def linked_track(own: np.ndarray, shown: Mapping[int, np.ndarray], current: int | None,
                 min_iou: float = LINK_IOU) -> int | None:
    """The link after a frame where the target showed ``own`` (non-empty): the shown class track
    with the highest IoU with it if at least ``min_iou``, else the link it had."""
    best, best_iou = current, min_iou
    for track_id, fg in shown.items():
        iou = _iou(own, fg)
        if iou >= best_iou:
            best, best_iou = track_id, iou
    return best


def borrowed_track(link: int | None, reference: np.ndarray | None, shown: Mapping[int, np.ndarray],
                   taken: set[int]) -> int | None:
    """The class track a target that shows nothing this frame borrows: its link if shown, else the
    shown track not in ``taken`` (other targets' links) that overlaps ``reference`` (the target's
    last mask) most; None when none overlaps it."""
    if link is not None and link in shown:
        return link
    if reference is None:
        return None
    best, best_overlap = None, 0
    for track_id, fg in shown.items():
        if track_id in taken or fg.shape != reference.shape:
            continue
        overlap = int((fg & reference).sum())
        if overlap > best_overlap:
            best, best_overlap = track_id, overlap
    return best
