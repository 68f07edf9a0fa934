"""Hungarian matcher: optimal against brute force, restricted to free queries, recovers a permutation."""
from __future__ import annotations

import itertools

import pytest
import torch

from streamseg.training.matcher import HungarianMatcher, MatchCosts, match_cost, pairwise_dice, pairwise_sigmoid_ce


def _random_case(gen: torch.Generator, q: int, n: int, k: int = 4):
    logits = torch.randn(q, k + 1, generator=gen) * 2
    masks = torch.randn(q, 8, 10, generator=gen) * 3
    labels = torch.randint(0, k, (n,), generator=gen)
    target_masks = torch.rand(n, 16, 20, generator=gen) > 0.5
    return logits, masks, labels, target_masks


def _brute_force(cost: torch.Tensor) -> float:
    q, n = cost.shape
    best = float("inf")
    if q >= n:
        for rows in itertools.permutations(range(q), n):
            best = min(best, sum(float(cost[r, c]) for c, r in enumerate(rows)))
    else:
        for cols in itertools.permutations(range(n), q):
            best = min(best, sum(float(cost[r, c]) for r, c in enumerate(cols)))
    return best


@pytest.mark.parametrize("q,n", [(5, 3), (6, 6), (4, 1), (3, 5), (7, 4)])
def test_assignment_is_optimal_against_brute_force(q: int, n: int) -> None:
    costs = MatchCosts(num_points=256)
    matcher = HungarianMatcher(costs)
    for seed in range(4):
        gen = torch.Generator().manual_seed(seed * 100 + q * 10 + n)
        logits, masks, labels, target_masks = _random_case(gen, q, n)
        torch.manual_seed(seed)  # the matcher's random points: same seed -> same cost matrix
        cost = match_cost(logits, masks, labels, target_masks, costs)
        torch.manual_seed(seed)
        qi, ti = matcher(logits, masks, labels, target_masks)
        assert len(qi) == min(q, n)
        assert len(set(qi.tolist())) == len(qi) and len(set(ti.tolist())) == len(ti)
        assert ti.tolist() == sorted(ti.tolist())
        total = float(cost[qi, ti].sum())
        assert total == pytest.approx(_brute_force(cost), abs=1e-5)


def test_restricted_queries_only_and_optimal_on_them() -> None:
    costs = MatchCosts(num_points=256)
    gen = torch.Generator().manual_seed(3)
    logits, masks, labels, target_masks = _random_case(gen, 7, 3)
    free = torch.tensor([1, 4, 5, 6])
    torch.manual_seed(11)
    cost = match_cost(logits, masks, labels, target_masks, costs)
    torch.manual_seed(11)
    qi, ti = HungarianMatcher(costs)(logits, masks, labels, target_masks, queries=free)
    assert set(qi.tolist()) <= set(free.tolist())
    assert float(cost[qi, ti].sum()) == pytest.approx(_brute_force(cost[free]), abs=1e-5)


def test_recovers_a_permutation_of_perfect_predictions() -> None:
    k, n = 5, 4
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    target_masks = torch.stack([(xx // 8 == i) & (yy > 4 * i) for i in range(n)])
    labels = torch.tensor([0, 3, 1, 3])
    perm = [5, 2, 0, 7]  # query holding target i
    logits = torch.zeros(8, k + 1)
    logits[:, k] = 5.0  # every query says no-object ...
    masks = torch.full((8, 32, 32), -10.0)
    for i, qidx in enumerate(perm):  # ... except the four that are exactly right
        logits[qidx, labels[i]] = 10.0
        masks[qidx] = torch.where(target_masks[i], 10.0, -10.0)
    qi, ti = HungarianMatcher(MatchCosts(num_points=1024))(logits, masks, labels, target_masks)
    assert ti.tolist() == [0, 1, 2, 3]
    assert qi.tolist() == perm


def test_pairwise_costs_equal_direct_computation() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 50, generator=gen)
    targets = (torch.rand(2, 50, generator=gen) > 0.5).float()
    ce = pairwise_sigmoid_ce(logits, targets)
    dice = pairwise_dice(logits, targets)
    for i in range(3):
        for j in range(2):
            direct = torch.nn.functional.binary_cross_entropy_with_logits(logits[i], targets[j])
            assert float(ce[i, j]) == pytest.approx(float(direct), rel=1e-5)
            p = logits[i].sigmoid()
            d = 1 - (2 * (p * targets[j]).sum() + 1) / (p.sum() + targets[j].sum() + 1)
            assert float(dice[i, j]) == pytest.approx(float(d), rel=1e-5)


def test_no_targets_gives_empty_match() -> None:
    qi, ti = HungarianMatcher()(torch.zeros(4, 3), torch.zeros(4, 8, 8), torch.zeros(0, dtype=torch.long),
                                torch.zeros(0, 8, 8, dtype=torch.bool))
    assert qi.numel() == 0 and ti.numel() == 0
