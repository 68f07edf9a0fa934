"""Loss terms: ~0 for perfect predictions, > 0 otherwise; GenVIS video assignment over a clip."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch

from streamseg.training.assignment import VideoAssignment
from streamseg.training.losses import (
    FrameTargets,
    LossWeights,
    VideoCriterion,
    class_loss,
    mask_losses,
    tcm_loss,
)
from streamseg.training.matcher import HungarianMatcher, MatchCosts

K = 4  # vocabulary size; index K = no-object
Q = 6
H = W = 32


@dataclass
class Out:  # the fields of OnlineVIS's StepOutput the criterion reads
    pred_logits: torch.Tensor
    pred_masks: torch.Tensor
    aux: list = field(default_factory=list)
    taxo_logits: torch.Tensor | None = None
    tcm_scores: torch.Tensor | None = None


def _box(x0: int, y0: int, x1: int, y1: int, h: int = H, w: int = W) -> torch.Tensor:
    m = torch.zeros(h, w, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def _logits_for(labels: dict[int, int]) -> torch.Tensor:
    """[Q,K+1] logits: query q confidently says labels[q], every other query no-object."""
    out = torch.full((Q, K + 1), -30.0)
    out[:, K] = 30.0
    for q, c in labels.items():
        out[q, K] = -30.0
        out[q, c] = 30.0
    return out


def _masks_for(masks: dict[int, torch.Tensor]) -> torch.Tensor:
    out = torch.full((Q, H, W), -200.0)
    for q, m in masks.items():
        out[q] = torch.where(m, 200.0, -200.0)
    return out


def test_class_loss_zero_when_perfect_positive_otherwise() -> None:
    target = torch.tensor([[2, K, K, 0, K, K]])
    perfect = _logits_for({0: 2, 3: 0}).unsqueeze(0)
    assert float(class_loss(perfect, target, 0.1)) < 1e-6
    wrong = _logits_for({0: 1, 3: 0}).unsqueeze(0)
    assert float(class_loss(wrong, target, 0.1)) > 1.0
    missed = _logits_for({3: 0}).unsqueeze(0)  # query 0 says no-object for a real instance
    assert float(class_loss(missed, target, 0.1)) > 1.0


def test_no_object_weight_down_weights_background() -> None:
    target = torch.tensor([[2, K]])
    logits = torch.zeros(1, 2, K + 1)  # uniform: both queries have the same CE
    uniform = float(class_loss(logits, target, 1.0))
    assert float(class_loss(logits, target, 0.1)) == pytest.approx(uniform, rel=1e-5)  # weighted mean of equals
    logits[0, 0, 2] = 5.0  # query 0 now right; the remaining loss is only the down-weighted no-object one
    expected = torch.log(torch.tensor(float(K + 1))) * 0.1 / (1.0 + 0.1)
    first = torch.nn.functional.cross_entropy(logits[0, :1], target[0, :1])
    assert float(class_loss(logits, target, 0.1)) == pytest.approx(float(expected + first / 1.1), rel=1e-4)


# A stride-4 logit map cannot draw a sharp full-resolution corner (bilinear rounds it), so the
# stride-4 case uses corner-free bands.
@pytest.mark.parametrize("stride,boxes", [(1, [(4, 8, 20, 28), (16, 0, 32, 12)]), (4, [(4, 0, 20, 32), (0, 8, 32, 16)])])
def test_mask_losses_zero_when_perfect_positive_otherwise(stride: int, boxes) -> None:
    torch.manual_seed(0)
    weights = LossWeights(num_points=2048)
    targets = torch.stack([_box(*bx) for bx in boxes])
    low = targets[:, ::stride, ::stride]  # the prediction at stride `stride`, block-aligned
    perfect = torch.where(low, 500.0, -500.0)
    bce, dice = mask_losses(perfect, targets, 2.0, weights)
    assert float(bce) < 1e-2 and float(dice) < 1e-2
    shifted = torch.where(torch.roll(low, shifts=(8 // stride, 8 // stride), dims=(1, 2)), 500.0, -500.0)
    bce, dice = mask_losses(shifted, targets, 2.0, weights)
    assert float(bce) > 1.0 and float(dice) > 0.1
    unsure = torch.zeros_like(perfect)  # logits 0 everywhere: BCE = ln 2 exactly
    bce, _ = mask_losses(unsure, targets, 2.0, weights)
    assert float(bce) == pytest.approx(0.6931, abs=1e-3)


def test_importance_sampling_concentrates_on_uncertain_points() -> None:
    from streamseg.training.points import point_sample, uncertain_point_coords

    torch.manual_seed(0)
    logits = torch.full((1, 32, 32), 20.0)
    logits[:, :, 15:17] = 0.0  # an uncertain vertical band covering 1/16 of the image
    coords = uncertain_point_coords(logits, 1000, 3.0, 0.75)
    values = point_sample(logits, coords)[0]
    in_band = float((values.abs() < 19.0).float().mean())
    assert in_band > 0.15  # uniform sampling would give ~0.06 (+ interpolation fringe)


def test_tcm_loss_zero_when_perfect_positive_otherwise() -> None:
    present = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    assert float(tcm_loss(present.clone(), present)) < 1e-5
    assert float(tcm_loss(torch.full_like(present, 0.5), present)) == pytest.approx(0.6931, abs=1e-4)
    assert float(tcm_loss(1.0 - present, present)) > 5.0


def _clip():
    """3 frames of one video: A (id 7, class 1), B (id 9, class 2) then A + newcomer C (id 11, class 3)."""
    a, b, c = _box(0, 0, 12, 12), _box(16, 16, 30, 30), _box(0, 18, 10, 30)
    frames = [
        FrameTargets(torch.tensor([1, 2]), torch.stack([a, b]), torch.tensor([7, 9])),
        FrameTargets(torch.tensor([1, 3]), torch.stack([a, c]), torch.tensor([7, 11])),
        FrameTargets(torch.tensor([3, 1, 2]), torch.stack([c, a, b]), torch.tensor([11, 7, 9])),
    ]
    return frames, (a, b, c)


def test_video_assignment_keeps_queries_and_matches_only_newcomers() -> None:
    frames, (a, b, c) = _clip()
    matcher = HungarianMatcher(MatchCosts(num_points=512))
    va = VideoAssignment(Q)
    # frame 0: query 2 predicts A, query 4 predicts B
    qi, ti = va.assign(matcher, _logits_for({2: 1, 4: 2}), _masks_for({2: a, 4: b}), frames[0].labels,
                       frames[0].masks, frames[0].ids)
    assert dict(zip(ti.tolist(), qi.tolist())) == {0: 2, 1: 4}
    # frame 1: B is gone; the query that would fit C best is 4 (B's, reserved) then 0 (free);
    # A is now predicted best by query 5, but A keeps query 2.
    logits = _logits_for({4: 3, 0: 3, 5: 1})
    masks = _masks_for({4: c, 0: c, 5: a})
    qi, ti = va.assign(matcher, logits, masks, frames[1].labels, frames[1].masks, frames[1].ids)
    assert dict(zip(ti.tolist(), qi.tolist())) == {0: 2, 1: 0}
    # frame 2: everyone known again (in a new order): no matching at all, B returns to query 4
    qi, ti = va.assign(matcher, _logits_for({}), _masks_for({}), frames[2].labels, frames[2].masks, frames[2].ids)
    assert dict(zip(ti.tolist(), qi.tolist())) == {0: 0, 1: 2, 2: 4}
    assert va.query_of == {7: 2, 9: 4, 11: 0}


def test_video_assignment_newcomers_beyond_free_queries_stay_unmatched() -> None:
    matcher = HungarianMatcher(MatchCosts(num_points=64))
    va = VideoAssignment(2)
    masks = torch.stack([_box(0, 0, 8, 8), _box(8, 8, 16, 16), _box(20, 20, 30, 30)])
    qi, ti = va.assign(matcher, torch.zeros(2, K + 1), torch.zeros(2, H, W), torch.tensor([0, 1, 2]), masks,
                       torch.tensor([1, 2, 3]))
    assert len(qi) == 2 and sorted(qi.tolist()) == [0, 1]


def _perfect_outputs(frames, a, b, c, noise: str | None = None):
    """Predictions that track A on query 2, B on query 4, C on query 0 (as the assignment will)."""
    slots = {7: (2, 1, a), 9: (4, 2, b), 11: (0, 3, c)}
    outs = []
    for f in frames:
        labels, masks = {}, {}
        for inst in f.ids.tolist():
            q, cls, m = slots[inst]
            labels[q], masks[q] = cls, m
        lg, mk = _logits_for(labels)[None], _masks_for(masks)[None]
        taxo = lg.clone()
        if noise == "cls":
            lg = lg.clone()
            lg[0, 2, :] = 0.0
        if noise == "mask":
            mk = torch.roll(mk, shifts=6, dims=3)
        if noise == "taxo":
            taxo = torch.zeros_like(taxo)
        present = torch.tensor([[0.0, 1.0, 1.0, 1.0]])
        tcm = torch.full_like(present, 0.5) if noise == "tcm" else present
        outs.append(Out(lg, mk, aux=[(lg, mk), (lg, mk)], taxo_logits=taxo, tcm_scores=tcm))
    return outs


def test_video_criterion_zero_when_perfect_each_term_positive_otherwise() -> None:
    torch.manual_seed(0)
    frames, (a, b, c) = _clip()
    targets = [[f] for f in frames]
    crit = VideoCriterion(LossWeights(num_points=1024))
    perfect = crit(_perfect_outputs(frames, a, b, c), targets)
    for key in ("cls", "mask", "dice", "taxo", "tcm", "total"):
        assert float(perfect[key]) < 0.05, key
    for term, key in (("cls", "cls"), ("mask", "mask"), ("mask", "dice"), ("taxo", "taxo"), ("tcm", "tcm")):
        noisy = crit(_perfect_outputs(frames, a, b, c, noise=term), targets)
        assert float(noisy[key]) > 0.2, (term, key)
        assert float(noisy["total"]) == pytest.approx(
            sum(float(noisy[k]) for k in ("cls", "mask", "dice", "taxo", "tcm")), rel=1e-5)


def test_video_criterion_deep_supervision_counts_every_layer() -> None:
    torch.manual_seed(0)
    frames, (a, b, c) = _clip()
    targets = [[f] for f in frames]
    crit = VideoCriterion(LossWeights(num_points=256, taxo=0.0, tcm=0.0))
    outs = _perfect_outputs(frames, a, b, c)
    bad = torch.zeros_like(outs[0].pred_logits)
    for o in outs:
        o.aux = [(bad, o.pred_masks), (o.pred_logits, o.pred_masks)]  # one wrong aux layer + the final one
    one_bad = float(crit(outs, targets)["cls"])
    for o in outs:
        o.aux = [(bad, o.pred_masks), (bad, o.pred_masks), (o.pred_logits, o.pred_masks)]
    two_bad = float(crit(outs, targets)["cls"])
    assert one_bad > 1.0 and two_bad == pytest.approx(2 * one_bad, rel=1e-4)


def test_criterion_gradients_reach_predictions() -> None:
    torch.manual_seed(0)
    frames, (a, b, c) = _clip()
    outs = _perfect_outputs(frames, a, b, c, noise="mask")
    for o in outs:
        o.pred_logits = (o.pred_logits * 0.01).requires_grad_()
        o.pred_masks = (o.pred_masks * 0.01).requires_grad_()
        o.aux = []
    loss = VideoCriterion(LossWeights(num_points=256))(outs, [[f] for f in frames])["total"]
    loss.backward()
    assert outs[0].pred_masks.grad.abs().sum() > 0 and outs[0].pred_logits.grad.abs().sum() > 0


def test_region_points_fall_inside_their_region_and_empty_regions_cover_the_image() -> None:
    from streamseg.training.points import region_point_coords

    torch.manual_seed(0)
    regions = torch.zeros(2, H, W, dtype=torch.bool)
    regions[0, 4:8, 20:30] = True  # rows 4-7, columns 20-29; region 1 is empty
    coords = region_point_coords(regions, 2000)
    x, y = coords[0, :, 0] * W, coords[0, :, 1] * H
    assert bool(((x >= 20) & (x < 30) & (y >= 4) & (y < 8)).all())
    assert float(x.std()) > 2.0  # spread over the region, not one pixel
    assert float(coords[1].min()) < 0.05 and float(coords[1].max()) > 0.95


def test_neighbour_points_charge_a_mask_that_spills_over_another_object() -> None:
    """A mask right on its object but spilling over a small neighbour: uniform and uncertainty
    sampling mostly miss the spill; points drawn on the neighbour do not."""
    torch.manual_seed(0)
    own = _box(0, 0, 16, 32)[None]
    neighbour = _box(16, 0, 18, 2)[None]  # 4 of 1,024 pixels
    pred = torch.where(own | neighbour, 500.0, -500.0)
    plain = [mask_losses(pred, own, 1.0, LossWeights(num_points=256))[0] for _ in range(5)]
    near = [mask_losses(pred, own, 1.0, LossWeights(num_points=256, neighbour_points=256), neighbour)[0]
            for _ in range(5)]
    near_mean, plain_mean = float(sum(near)) / 5, float(sum(plain)) / 5
    assert near_mean > 50.0 and plain_mean < 10.0
    perfect = torch.where(own, 500.0, -500.0)
    bce, dice = mask_losses(perfect, own, 1.0, LossWeights(num_points=256, neighbour_points=256), neighbour)
    assert float(bce) < 1e-2 and float(dice) < 1e-2


def test_video_criterion_neighbours_are_the_other_objects_of_the_frame() -> None:
    frames, _ = _clip()
    crit = VideoCriterion(LossWeights(num_points=64, neighbour_points=8))
    masks = frames[0].masks
    matched = torch.arange(masks.shape[0]).flip(0)  # query i matched to object n-1-i
    (near,) = crit._neighbours([frames[0]], [masks[matched]], torch.device("cpu"))
    for i, t in enumerate(matched.tolist()):
        others = masks[[j for j in range(masks.shape[0]) if j != t]].any(0) & ~masks[t]
        assert torch.equal(near[i], others)
    off = VideoCriterion(LossWeights(num_points=64))
    assert off._neighbours([frames[0]], [masks[matched]], torch.device("cpu")) is None
