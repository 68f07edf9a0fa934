"""Training losses: Mask2Former's set losses under GenVIS's video assignment, plus TMT-VIS eq. 8.

Total over a clip (averaged over its frames), summed over every decoder layer (deep supervision):
    L = sum_layers [ w_mask * BCE + w_dice * dice + lambda_cls * CE ] + lambda_taxo * CE(taxo_logits)
        + w_tcm * BCE(S, classes present in the clip) + w_quality * BCE(IoU logits, IoU)
BCE and dice are computed on importance-sampled points of the matched masks (with
``neighbour_points``, also on points drawn from the frame's other objects: the hard negatives
where masks of touching and occluding shapes spill over); CE runs over the
vocabulary plus no-object, the no-object class down-weighted. The taxonomy loss (eq. 8) applies
the same CE to the classes predicted right after taxonomy injection, with the final layer's
assignment ("the matching algorithm remains the same"). The quality term (with
``model.quality_head``) teaches each query's IoU logit the IoU of its final binarised mask with
the object it overlaps most on that frame, whether matched or not: a duplicate or a stray mask
should rank low too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F

from streamseg.training.assignment import VideoAssignment
from streamseg.training.matcher import HungarianMatcher, MatchCosts
from streamseg.training.points import (
    point_sample,
    region_point_coords,
    sample_targets,
    uncertain_point_coords,
)


@dataclass
class FrameTargets:
    """Ground truth of one video in one frame."""

    labels: torch.Tensor  # [N] long, index into the clip's vocabulary (0..K-1)
    masks: torch.Tensor  # [N, H, W] bool, at the input resolution
    ids: torch.Tensor  # [N] long, instance ids, unique within the video


@dataclass
class LossWeights:
    cls: float = 2.0  # lambda_cls of eq. 8 (also Mask2Former's class weight)
    mask: float = 5.0
    dice: float = 5.0
    taxo: float = 0.5  # lambda_taxo of eq. 8
    tcm: float = 1.0  # BCE of TCM's score S against the classes present in the clip
    no_object: float = 0.1
    num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    quality: float = 1.0  # BCE of the quality head's IoU logits against the measured IoU
    # extra points per matched mask drawn uniformly on the frame's other objects (0 = off):
    # uniform and uncertainty sampling rarely land on a confident spill over a neighbour
    neighbour_points: int = 0


def class_loss(logits: torch.Tensor, target_classes: torch.Tensor, no_object_weight: float) -> torch.Tensor:
    """Weighted CE over K+1 classes (index K = no-object): logits [B,Q,K+1], targets [B,Q]."""
    num_classes = logits.shape[-1]
    weight = torch.ones(num_classes, device=logits.device)
    weight[-1] = no_object_weight
    return F.cross_entropy(logits.float().transpose(1, 2), target_classes, weight=weight)


def sigmoid_ce_loss(point_logits: torch.Tensor, point_labels: torch.Tensor, num_masks: float) -> torch.Tensor:
    """Per-mask mean BCE over points, summed over masks, divided by num_masks."""
    loss = F.binary_cross_entropy_with_logits(point_logits, point_labels, reduction="none")
    return loss.mean(1).sum() / num_masks


def dice_loss(point_logits: torch.Tensor, point_labels: torch.Tensor, num_masks: float) -> torch.Tensor:
    """+1-smoothed dice loss per mask, summed over masks, divided by num_masks."""
    probs = point_logits.sigmoid()
    numerator = 2.0 * (probs * point_labels).sum(-1)
    denominator = probs.sum(-1) + point_labels.sum(-1)
    return (1.0 - (numerator + 1.0) / (denominator + 1.0)).sum() / num_masks


def mask_losses(
    pred_masks: torch.Tensor,
    target_masks: torch.Tensor,
    num_masks: float,
    weights: LossWeights,
    neighbours: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(BCE, dice) of matched mask logits [M,h,w] against targets [M,H,W] on importance-sampled
    points, plus ``weights.neighbour_points`` points inside ``neighbours`` [M,H,W] (bool: the
    frame's other objects) when both are given."""
    if pred_masks.shape[0] == 0:
        zero = pred_masks.sum() * 0.0
        return zero, zero
    pred = pred_masks.float()
    coords = uncertain_point_coords(
        pred, weights.num_points, weights.oversample_ratio, weights.importance_sample_ratio
    )
    if neighbours is not None and weights.neighbour_points > 0:
        coords = torch.cat([coords, region_point_coords(neighbours, weights.neighbour_points)], dim=1)
    labels = sample_targets(target_masks, coords)
    logits = point_sample(pred, coords)
    return sigmoid_ce_loss(logits, labels, num_masks), dice_loss(logits, labels, num_masks)


def tcm_loss(scores: torch.Tensor, present: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """BCE of TCM's score S (probabilities, eq. 5) [B,K] against the multi-hot present classes [B,K],
    averaged over the ``valid`` [B,K] entries only (classes the clip's dataset annotates)."""
    p = scores.float().clamp(1e-6, 1.0 - 1e-6)
    y = present.float()
    bce = -(y * p.log() + (1.0 - y) * (1.0 - p).log())
    if valid is None:
        return bce.mean()
    w = valid.float()
    return (bce * w).sum() / w.sum().clamp(min=1.0)


@torch.no_grad()
def best_iou(mask_logits: torch.Tensor, gt_masks: torch.Tensor) -> torch.Tensor:
    """(Q, h, w) mask logits, (N, H, W) bool ground truth -> (Q,) IoU of each binarised mask
    (bilinear to H x W, logit >= 0) with the object it overlaps most (0 without objects)."""
    q = mask_logits.shape[0]
    if gt_masks.shape[0] == 0 or q == 0:
        return mask_logits.new_zeros(q, dtype=torch.float32)
    pred = F.interpolate(mask_logits[None].float(), size=gt_masks.shape[-2:], mode="bilinear",
                         align_corners=False)[0] >= 0.0
    p = pred.flatten(1).float()
    g = gt_masks.flatten(1).float()
    inter = p @ g.t()
    union = p.sum(1, keepdim=True) + g.sum(1)[None] - inter
    return (inter / union.clamp(min=1.0)).max(1).values


def quality_loss(iou_logits: torch.Tensor, mask_logits: torch.Tensor, gt_masks: torch.Tensor) -> torch.Tensor:
    """Mean BCE of (Q,) IoU logits against best_iou of their masks."""
    target = best_iou(mask_logits, gt_masks.to(mask_logits.device))
    return F.binary_cross_entropy_with_logits(iou_logits.float(), target)


def mask_classes(logits: torch.Tensor, class_mask: torch.Tensor | None) -> torch.Tensor:
    """Logits [B,Q,K+1] with the classes a clip's dataset does not annotate pushed to -1e4.

    In joint training a dataset leaves other datasets' classes unannotated even where they appear
    (a shape outside its taxonomy is still in the pixels); those classes must be neither rewarded
    nor punished on its clips. No-object (index K) always stays.
    """
    if class_mask is None:
        return logits
    keep = torch.cat([class_mask.bool(), class_mask.new_ones(class_mask.shape[0], 1, dtype=torch.bool)], 1)
    return logits.float().masked_fill(~keep[:, None, :], -1e4)


def present_classes(targets: Sequence[Sequence[FrameTargets]], batch: int, num_classes: int, device) -> torch.Tensor:
    """Multi-hot [B,K] of the classes annotated anywhere in each video's clip."""
    present = torch.zeros(batch, num_classes, device=device)
    for frame in targets:
        for b, tgt in enumerate(frame):
            if tgt.labels.numel():
                present[b, tgt.labels.to(device)] = 1.0
    return present


def _global_count(count: int, device: torch.device) -> float:
    """Instances per frame averaged over DDP ranks (as Mask2Former normalises), at least 1."""
    total = torch.tensor(float(count), device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(total)
        total = total / dist.get_world_size()
    return max(float(total.item()), 1.0)


def _layers(out: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every decoder layer's (logits, masks), the final prediction last, without duplicates."""
    layers = [(lg, mk) for lg, mk in (out.aux or []) if lg is not out.pred_logits]
    layers.append((out.pred_logits, out.pred_masks))
    return layers


class VideoCriterion:
    """Loss of a clip decoded online (a list of per-frame StepOutputs) against per-frame targets.

    Every decoder layer keeps its own video assignment over the clip (as GenVIS matches each
    layer), so deep supervision does not force an early layer into the last layer's choices.
    """

    def __init__(self, weights: LossWeights | None = None, costs: MatchCosts | None = None) -> None:
        self.weights = weights or LossWeights()
        self.matcher = HungarianMatcher(costs or MatchCosts(num_points=self.weights.num_points))

    def __call__(
        self,
        outputs: Sequence[Any],
        targets: Sequence[Sequence[FrameTargets]],
        class_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``outputs[t]`` has pred_logits [B,Q,K+1], pred_masks [B,Q,h,w], aux, taxo_logits,
        tcm_scores; ``targets[t][b]`` is FrameTargets; ``class_mask`` [B,K] bool marks the classes
        each clip's dataset annotates (None = all). Returns the weighted terms and their sum."""
        w = self.weights
        first = outputs[0]
        batch, num_queries, num_k1 = first.pred_logits.shape
        device = first.pred_logits.device
        num_layers = len(_layers(first))
        assignments = [[VideoAssignment(num_queries) for _ in range(batch)] for _ in range(num_layers)]
        terms = {k: torch.zeros((), device=device) for k in ("cls", "mask", "dice", "taxo", "tcm", "quality")}

        for out, frame_targets in zip(outputs, targets):
            num_masks = _global_count(sum(int(t.labels.numel()) for t in frame_targets), device)
            final_pairs = None
            for layer, (logits, masks) in enumerate(_layers(out)):
                logits = mask_classes(logits, class_mask)
                pairs = [
                    assignments[layer][b].assign(
                        self.matcher, logits[b].detach(), masks[b].detach(),
                        tgt.labels.to(device), tgt.masks.to(device), tgt.ids,
                    )
                    for b, tgt in enumerate(frame_targets)
                ]
                final_pairs = pairs
                target_classes = self._target_classes(pairs, frame_targets, batch, num_queries, num_k1, device)
                terms["cls"] = terms["cls"] + w.cls * class_loss(logits, target_classes, w.no_object)
                src = torch.cat([masks[b][q] for b, (q, _) in enumerate(pairs)])
                tgt_masks = [frame_targets[b].masks.to(device)[t] for b, (_, t) in enumerate(pairs)]
                neighbours = self._neighbours(frame_targets, tgt_masks, device)
                bce, dice = self._mask_terms(src, tgt_masks, num_masks, neighbours)
                terms["mask"] = terms["mask"] + w.mask * bce
                terms["dice"] = terms["dice"] + w.dice * dice
            if out.taxo_logits is not None and w.taxo > 0:
                target_classes = self._target_classes(final_pairs, frame_targets, batch, num_queries, num_k1, device)
                taxo_logits = mask_classes(out.taxo_logits, class_mask)
                terms["taxo"] = terms["taxo"] + w.taxo * class_loss(taxo_logits, target_classes, w.no_object)
            quality = getattr(out, "pred_quality", None)
            if quality is not None and w.quality > 0:
                terms["quality"] = terms["quality"] + w.quality * sum(
                    quality_loss(quality[b], out.pred_masks[b], tgt.masks) for b, tgt in enumerate(frame_targets)
                ) / batch

        num_frames = len(outputs)
        for key in ("cls", "mask", "dice", "taxo", "quality"):
            terms[key] = terms[key] / num_frames
        scores = self._distinct_tcm_scores(outputs)
        if scores and w.tcm > 0:
            present = present_classes(targets, batch, num_k1 - 1, device)
            terms["tcm"] = w.tcm * sum(tcm_loss(s, present, class_mask) for s in scores) / len(scores)
        terms["total"] = sum(terms[k] for k in ("cls", "mask", "dice", "taxo", "tcm", "quality"))
        return terms

    @staticmethod
    def _target_classes(pairs, frame_targets, batch, num_queries, num_k1, device) -> torch.Tensor:
        """[B,Q] class targets: the matched instance's label, no-object (K) elsewhere."""
        target = torch.full((batch, num_queries), num_k1 - 1, dtype=torch.long, device=device)
        for b, (q, t) in enumerate(pairs):
            if q.numel():
                target[b, q] = frame_targets[b].labels.to(device)[t]
        return target

    def _neighbours(self, frame_targets, tgt_masks: list[torch.Tensor], device) -> list[torch.Tensor] | None:
        """Per video, [n,H,W] bool: for each matched object (``tgt_masks``), the frame's other objects."""
        if self.weights.neighbour_points <= 0:
            return None
        return [t.masks.to(device).any(0, keepdim=True) & ~own for t, own in zip(frame_targets, tgt_masks)]

    def _mask_terms(self, src: torch.Tensor, tgt_masks: list[torch.Tensor], num_masks: float,
                    neighbours: list[torch.Tensor] | None = None):
        """BCE and dice over every matched pair of the batch; targets may differ in size per video."""
        sizes = {tuple(m.shape[-2:]) for m in tgt_masks if m.shape[0]}
        if len(sizes) <= 1:
            keep = [i for i, m in enumerate(tgt_masks) if m.shape[0]]
            tgt = torch.cat([tgt_masks[i] for i in keep]) if keep else src.new_zeros((0, 1, 1), dtype=torch.bool)
            near = torch.cat([neighbours[i] for i in keep]) if neighbours is not None and keep else None
            return mask_losses(src, tgt, num_masks, self.weights, near)
        bce_sum, dice_sum, start = 0.0, 0.0, 0
        for i, m in enumerate(tgt_masks):
            n = m.shape[0]
            near = neighbours[i] if neighbours is not None else None
            bce, dice = mask_losses(src[start : start + n], m, num_masks, self.weights, near)
            bce_sum, dice_sum, start = bce_sum + bce, dice_sum + dice, start + n
        return bce_sum, dice_sum

    @staticmethod
    def _distinct_tcm_scores(outputs: Sequence[Any]) -> list[torch.Tensor]:
        """TCM scores of the clip, each window's tensor once (steps inside a window share it)."""
        seen: set[int] = set()
        scores = []
        for out in outputs:
            s = getattr(out, "tcm_scores", None)
            if s is not None and id(s) not in seen:
                seen.add(id(s))
                scores.append(s)
        return scores
