"""Hungarian matching of predicted queries to ground-truth instances (Mask2Former costs).

Cost of pairing query q with instance n:
    w_class * (-p_q[label_n]) + w_mask * BCE(mask_q, mask_n) + w_dice * dice(mask_q, mask_n)
with both mask terms computed on the same random points for every pair (as Mask2Former), then
scipy's linear_sum_assignment picks the cheapest one-to-one assignment.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from streamseg.training.points import point_sample, sample_targets


@dataclass
class MatchCosts:
    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    num_points: int = 12544


def pairwise_sigmoid_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean sigmoid BCE over points for every (prediction, target) pair: [Q,P] x [N,P] -> [Q,N]."""
    pos = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    neg = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    cost = pos @ targets.T + neg @ (1.0 - targets).T
    return cost / logits.shape[1]


def pairwise_dice(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Dice loss (+1 smoothed) for every (prediction, target) pair: [Q,P] x [N,P] -> [Q,N]."""
    probs = logits.sigmoid()
    numerator = 2.0 * probs @ targets.T
    denominator = probs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1.0 - (numerator + 1.0) / (denominator + 1.0)


@torch.no_grad()
def match_cost(
    logits: torch.Tensor,
    masks: torch.Tensor,
    labels: torch.Tensor,
    target_masks: torch.Tensor,
    costs: MatchCosts,
) -> torch.Tensor:
    """Cost matrix [Q, N] between predictions (logits [Q,K+1], mask logits [Q,h,w]) and targets
    (labels [N], masks [N,H,W]); the mask terms share one set of random points."""
    q, n = logits.shape[0], labels.shape[0]
    if n == 0:
        return logits.new_zeros((q, 0), dtype=torch.float32)
    prob = logits.float().softmax(-1)
    cost_class = -prob[:, labels]
    coords = torch.rand(1, costs.num_points, 2, device=masks.device)
    pred_pts = point_sample(masks.float(), coords.expand(q, -1, -1))
    tgt_pts = sample_targets(target_masks, coords.expand(n, -1, -1))
    cost = costs.class_weight * cost_class
    cost = cost + costs.mask_weight * pairwise_sigmoid_ce(pred_pts, tgt_pts)
    cost = cost + costs.dice_weight * pairwise_dice(pred_pts, tgt_pts)
    return cost


def solve(cost: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one assignment; returns (rows, cols) sorted by column."""
    matrix = cost.detach().cpu().numpy()
    if not np.isfinite(matrix).all():  # a NaN from a diverged model must not crash scipy
        matrix = np.nan_to_num(matrix, nan=1e6, posinf=1e6, neginf=-1e6)
    rows, cols = linear_sum_assignment(matrix)
    order = np.argsort(cols)
    return rows[order], cols[order]


class HungarianMatcher:
    """Matches one frame's predictions of one video to its instances."""

    def __init__(self, costs: MatchCosts | None = None) -> None:
        self.costs = costs or MatchCosts()

    def __call__(
        self,
        logits: torch.Tensor,
        masks: torch.Tensor,
        labels: torch.Tensor,
        target_masks: torch.Tensor,
        queries: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (query_idx, target_idx), both long tensors sorted by target index.

        ``queries`` (long indices) restricts matching to those queries — the free queries of the
        online video assignment; the returned indices are still into the full query set.
        """
        if queries is None:
            queries = torch.arange(logits.shape[0], device=logits.device)
        empty = torch.empty(0, dtype=torch.long, device=logits.device)
        if labels.numel() == 0 or queries.numel() == 0:
            return empty, empty
        cost = match_cost(logits[queries], masks[queries], labels, target_masks, self.costs)
        rows, cols = solve(cost)
        query_idx = queries[torch.as_tensor(rows, dtype=torch.long, device=queries.device)]
        return query_idx, torch.as_tensor(cols, dtype=torch.long, device=logits.device)
