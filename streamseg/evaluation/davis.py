"""DAVIS's video object segmentation measures (Perazzi et al. 2016; the davis2017-evaluation code).

J: region similarity, the IoU of a predicted and a ground-truth mask (1 when both are empty).
F: contour accuracy, the F-measure of boundary precision and recall, a boundary pixel matching
   when the other boundary lies within ``bound_th`` x the image diagonal (rounded up; a disk of
   that radius dilates the other boundary). Boundaries follow DAVIS's seg2bmap rule: a pixel is a
   boundary pixel when it differs from its east, south or south-east neighbour.
Statistics per object (DAVIS's db_statistics): mean, recall (share of frames > 0.5) and decay
(mean of the first quarter of the frames minus mean of the last quarter).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.ndimage import binary_dilation

BOUND_TH = 0.008
N_BINS = 4


def region_j(pred: np.ndarray, gt: np.ndarray) -> float:
    pred, gt = pred.astype(bool), gt.astype(bool)
    union = np.logical_or(pred, gt).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pred, gt).sum() / union)


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """DAVIS's boundary map: seg XOR its east, south and south-east neighbours (outside = copy)."""
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def disk(radius: int) -> np.ndarray:
    """skimage.morphology.disk: the pixels with x^2 + y^2 <= r^2."""
    r = int(radius)
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return (x * x + y * y) <= r * r


def boundary_radius(shape: tuple[int, int], bound_th: float = BOUND_TH) -> int:
    return int(bound_th) if bound_th >= 1 else int(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


def boundary_f(pred: np.ndarray, gt: np.ndarray, bound_th: float = BOUND_TH) -> float:
    pred_b, gt_b = seg2bmap(pred), seg2bmap(gt)
    se = disk(boundary_radius(pred.shape, bound_th))
    pred_dil = binary_dilation(pred_b, structure=se)
    gt_dil = binary_dilation(gt_b, structure=se)
    n_pred, n_gt = int(pred_b.sum()), int(gt_b.sum())
    if n_pred == 0 and n_gt == 0:
        precision = recall = 1.0
    elif n_pred == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        precision = float((pred_b & gt_dil).sum() / n_pred)
        recall = float((gt_b & pred_dil).sum() / n_gt)
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


def statistics(values: np.ndarray) -> dict[str, float]:
    """Mean, recall (> 0.5) and decay of one object's per-frame values, as DAVIS computes them."""
    v = np.asarray(values, dtype=np.float64)
    ids = (np.round(np.linspace(1, len(v), N_BINS + 1) + 1e-10) - 1).astype(int)
    bins = [v[ids[i] : ids[i + 1] + 1] for i in range(N_BINS)]
    out: dict[str, Any] = {"mean": float(v.mean()), "recall": float((v > 0.5).mean()),
            "decay": float(bins[0].mean() - bins[-1].mean()),
            "bins": [float(b.mean()) for b in bins]}
    return out
