"""Post-processing of the network's low-resolution mask logits into published masks and boxes."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from streamseg.masks import MaskBox

_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity for drop_pieces
_REGION_MAX_FRACTION = 0.2  # measured crossover: above it, upsampling the whole mask is cheaper


@dataclass
class QueryScores:
    """One frame's per-query verdict, before tracking."""

    score: torch.Tensor  # (Q,) float: class probability x mask quality; 0 = shows nothing
    class_id: torch.Tensor  # (Q,) long: the query's class (meaningless where score is 0)
    fg: torch.Tensor  # (Q, h, w) bool: the binarised low-resolution masks
    # (Q,) what a track's published score averages instead of ``score`` (postprocess.quality
    # head/both: the quality head's IoU in it); None = ``score``. The tracker's thresholds read
    # ``score`` either way, the scale they were tuned on.
    rank: torch.Tensor | None = None


@dataclass
class Pairs:
    """Mask2Former's selected (query, class) pairs (top-k order is not meaningful)."""

    query: torch.Tensor  # (k,) long
    class_id: torch.Tensor  # (k,) long
    class_score: torch.Tensor  # (k,) softmax probability of the class
    mask_score: torch.Tensor  # (k,) mean foreground probability inside the binarised mask
    score: torch.Tensor  # (k,) class_score x mask_score


def argmax_scores(class_logits: torch.Tensor, mask_logits: torch.Tensor, logit_thr: float,
                  iou_logits: torch.Tensor | None = None, quality: str = "mask") -> QueryScores:
    """Per query: its best class (no-object excluded) probability x mask quality (the mean
    foreground probability inside the mask), 0 if its mask is empty. quality "head" / "both" add
    ``rank``: the class probability x the IoU the quality head predicts (iou_logits (Q,)) / x both.
    class_logits (Q, K+1), mask_logits (Q, h, w)."""
    probs = class_logits.float().softmax(-1)[:, :-1]
    if probs.shape[1] == 0:  # no vocabulary (targets only): no class tracks
        class_prob = class_id = torch.zeros(probs.shape[0], dtype=torch.long, device=probs.device)
    else:
        class_prob, class_id = probs.max(-1)
    mask_logits = mask_logits.float()
    fg = mask_logits >= logit_thr
    area = fg.sum((1, 2))
    inside = (mask_logits.sigmoid() * fg).sum((1, 2)) / area.clamp(min=1)
    rank = None
    if quality != "mask":
        if iou_logits is None:
            raise ValueError(f"quality {quality!r} needs the quality head's IoU logits")
        predicted = iou_logits.float().sigmoid() * (area > 0)
        rank = class_prob * (predicted if quality == "head" else predicted * inside)
    return QueryScores(score=class_prob * inside, class_id=class_id, fg=fg, rank=rank)


def mask2former_pairs(class_logits: torch.Tensor, mask_logits: torch.Tensor, top_k: int = 0,
                      logit_thr: float = 0.0) -> Pairs:
    """Mask2Former's instance post-processing (as transformers'
    ``post_process_instance_segmentation``): softmax over the classes, no-object dropped; the
    top_k (0: Q) pairs over query x class; a mask is its logits > logit_thr; mask score = mean
    sigmoid inside it (+1e-6 in the denominator, as there); score = class x mask score."""
    q, k1 = class_logits.shape
    k = k1 - 1
    probs = class_logits.float().softmax(-1)[:, :-1]
    take = min(top_k or q, q * k)
    class_score, flat = probs.flatten().topk(take, sorted=False)
    query = torch.div(flat, k, rounding_mode="floor")
    mask_logits = mask_logits.float().flatten(1)
    fg = (mask_logits > logit_thr).float()
    per_query = (mask_logits.sigmoid() * fg).sum(1) / (fg.sum(1) + 1e-6)
    mask_score = per_query[query]
    return Pairs(query=query, class_id=flat % k, class_score=class_score, mask_score=mask_score,
                 score=class_score * mask_score)


def mask2former_scores(class_logits: torch.Tensor, mask_logits: torch.Tensor, top_k: int,
                       logit_thr: float) -> QueryScores:
    """Per query: its best pair among Mask2Former's selected pairs (0 if none was selected)."""
    q = class_logits.shape[0]
    fg = mask_logits.float() > logit_thr
    score = torch.zeros(q, device=class_logits.device)
    class_id = torch.zeros(q, dtype=torch.long, device=class_logits.device)
    if class_logits.shape[1] <= 1 or q == 0:
        return QueryScores(score=score, class_id=class_id, fg=fg)
    pairs = mask2former_pairs(class_logits, mask_logits, top_k, logit_thr)
    order = torch.argsort(pairs.score, descending=True, stable=True)
    _, first = np.unique(pairs.query[order].cpu().numpy(), return_index=True)  # best pair per query
    best = order[torch.from_numpy(first).to(order.device)]
    score[pairs.query[best]] = pairs.score[best]
    class_id[pairs.query[best]] = pairs.class_id[best]
    return QueryScores(score=score, class_id=class_id, fg=fg)


def drop_pieces(logits: torch.Tensor, threshold: float, min_ratio: float) -> torch.Tensor:
    """Low-res mask logits (h, w) with every 8-connected foreground piece smaller than
    ``min_ratio`` x the largest piece pushed below ``threshold`` (the input itself when nothing
    is dropped). 8-connectivity keeps it exact after upsampling: no 2x2 bilinear support holds
    pixels of two pieces, so the kept pieces upsample as before."""
    if min_ratio <= 0.0:
        return logits
    fg = (logits >= threshold).cpu().numpy()
    labels, count = ndimage.label(fg, structure=_EIGHT)
    if count <= 1:
        return logits
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    drop = np.isin(labels, np.flatnonzero(areas < min_ratio * areas.max()) + 1)
    if not drop.any():
        return logits
    below = torch.as_tensor(threshold - 1.0, dtype=logits.dtype, device=logits.device)
    return torch.where(torch.from_numpy(drop).to(logits.device), torch.minimum(logits, below), logits)


def continuous_pieces(logits: torch.Tensor, threshold: float, reference: np.ndarray | None,
                      grow: int) -> tuple[torch.Tensor, np.ndarray | None]:
    """A prompted target's low-res mask logits (h, w) with every 8-connected foreground piece
    that does not touch ``reference`` (its previous mask, (h, w) bool) grown by ``grow`` cells
    pushed below ``threshold``; returns them and the reference for the next frame.

    Objects move a little from frame to frame; a target whose query jumped to another object
    (its own left the view or was hidden) would otherwise publish that object under its ID. When
    no piece touches, the target shows nothing and keeps its old reference, so it is picked up
    again only where it was last seen. No reference yet (first frame, or the mask size changed):
    everything is kept and becomes the reference. ``grow`` < 0: off.
    """
    fg = (logits >= threshold).cpu().numpy()
    if grow < 0:
        return logits, None
    if reference is None or reference.shape != fg.shape or not reference.any():
        return logits, (fg if fg.any() else None)
    if not fg.any():
        return logits, reference
    near = ndimage.binary_dilation(reference, structure=_EIGHT, iterations=grow) if grow > 0 else reference
    labels, _ = ndimage.label(fg, structure=_EIGHT)
    touching = np.unique(labels[near & fg])
    keep = np.isin(labels, touching[touching > 0])
    if keep.sum() == fg.sum():
        return logits, keep
    below = torch.as_tensor(threshold - 1.0, dtype=logits.dtype, device=logits.device)
    gated = torch.where(torch.from_numpy(~keep & fg).to(logits.device), torch.minimum(logits, below), logits)
    return gated, (keep if keep.any() else reference)


def paste_mask(logits: torch.Tensor, height: int, width: int,
               threshold: float) -> tuple[np.ndarray, MaskBox] | None:
    """Low-res mask logits (h, w) -> the full-resolution mask's tight bool crop and its mask_box
    (x, y, w, h in the height x width frame), or None if empty. No full frame is allocated.

    Equal to thresholding ``F.interpolate(bilinear, align_corners=False)`` of the whole mask, but
    only the region around the mask is sampled: a bilinear value is a convex combination of its 4
    source pixels, so it can reach the threshold only next to a low-res foreground pixel. At 720p
    this is several times cheaper than upsampling whole frames.
    """
    h, w = logits.shape
    fg = logits >= threshold
    rows = torch.nonzero(fg.any(1)).flatten()
    if rows.numel() == 0:
        return None
    cols = torch.nonzero(fg.any(0)).flatten()
    # Output pixel Y samples source row (Y + 0.5) * h / height - 0.5; keep every Y whose two source
    # rows can include a foreground row (one row of slack on each side).
    sy, sx = height / h, width / w
    y0 = max(0, int(math.floor((int(rows[0]) - 1 + 0.5) * sy - 0.5)))
    y1 = min(height, int(math.ceil((int(rows[-1]) + 1 + 0.5) * sy + 0.5)) + 1)
    x0 = max(0, int(math.floor((int(cols[0]) - 1 + 0.5) * sx - 0.5)))
    x1 = min(width, int(math.ceil((int(cols[-1]) + 1 + 0.5) * sx + 0.5)) + 1)
    if (y1 - y0) * (x1 - x0) > _REGION_MAX_FRACTION * height * width:
        # A large mask: interpolate's whole-frame kernel beats gathering most of the frame.
        full = F.interpolate(logits[None, None].float(), size=(height, width), mode="bilinear",
                             align_corners=False)[0, 0]
        region_np = (full[y0:y1, x0:x1] >= threshold).cpu().numpy()
    else:
        src = logits.detach().float().cpu().numpy()
        region_np = _bilinear_region(src, y0, y1, x0, x1, height, width) >= threshold
    ys = np.flatnonzero(region_np.any(1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(region_np.any(0))
    crop = np.ascontiguousarray(region_np[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1])
    return crop, (x0 + int(xs[0]), y0 + int(ys[0]), int(xs[-1] - xs[0]) + 1, int(ys[-1] - ys[0]) + 1)


def _bilinear_region(src: np.ndarray, y0: int, y1: int, x0: int, x1: int, height: int,
                     width: int) -> np.ndarray:
    """Rows y0:y1, columns x0:x1 of ``F.interpolate(src, (height, width), "bilinear",
    align_corners=False)``, computed only there (same source-index rule and float32 arithmetic as
    PyTorch's kernel). NumPy: on regions this small torch's per-op dispatch costs more than the work."""
    def axis(start: int, stop: int, out_size: int, in_size: int) -> tuple[np.ndarray, ...]:
        dst = np.arange(start, stop, dtype=np.float32)
        pos = np.maximum((dst + np.float32(0.5)) * np.float32(in_size / out_size) - np.float32(0.5), np.float32(0.0))
        i0 = pos.astype(np.int64)  # floor: pos >= 0
        return i0, np.minimum(i0 + 1, in_size - 1), pos - i0.astype(np.float32)

    iy0, iy1, ly = axis(y0, y1, height, src.shape[0])
    ix0, ix1, lx = axis(x0, x1, width, src.shape[1])
    rows0, rows1 = src[iy0], src[iy1]
    one = np.float32(1.0)
    top = rows0[:, ix0] * (one - lx) + rows0[:, ix1] * lx
    bottom = rows1[:, ix0] * (one - lx) + rows1[:, ix1] * lx
    return top * (one - ly)[:, None] + bottom * ly[:, None]
