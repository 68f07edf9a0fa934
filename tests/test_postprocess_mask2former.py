"""Mask2Former instance post-processing against transformers' own, on the same logits."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from streamseg.predictor.postprocess import argmax_scores, mask2former_pairs, mask2former_scores

transformers = pytest.importorskip("transformers")

SIDE = 384  # transformers resizes mask logits to 384x384 first: at that size it is the identity


def logits(q: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    cls = torch.randn(1, q, k + 1, generator=g) * 3.0
    # smooth blobs at stride 4, upsampled: masks with real interiors and edges, some empty
    low = torch.randn(1, q, SIDE // 16, SIDE // 16, generator=g) * 2.0 - 1.0
    masks = torch.nn.functional.interpolate(low, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
    masks[0, :2] = -5.0  # two queries with an empty mask
    return cls, masks


@pytest.mark.parametrize("q,k,threshold", [(20, 5, 0.0), (30, 8, 0.2), (12, 3, 0.05)])
def test_same_selection_scores_and_masks_as_transformers(q: int, k: int, threshold: float) -> None:
    from transformers import Mask2FormerImageProcessor

    cls, masks = logits(q, k, seed=q * 100 + k)
    ref = Mask2FormerImageProcessor().post_process_instance_segmentation(
        SimpleNamespace(class_queries_logits=cls, masks_queries_logits=masks), threshold=threshold,
        return_binary_maps=True)[0]
    pairs = mask2former_pairs(cls[0], masks[0])
    keep = [(j, float(pairs.score[j])) for j in range(len(pairs.score))
            if float(pairs.score[j]) >= threshold and bool((masks[0, pairs.query[j]] > 0).any())]
    ours = sorted((int(pairs.class_id[j]), round(s, 6), int(pairs.query[j])) for j, s in keep)
    theirs = sorted((seg["label_id"], seg["score"]) for seg in ref["segments_info"])
    assert len(theirs) >= 3  # the comparison selects something
    assert [(c, s) for c, s, _ in ours] == theirs
    # the masks: transformers' binary maps in its (top-k) order; ours by the same (class, score)
    by_key = {(seg["label_id"], seg["score"]): i for i, seg in enumerate(ref["segments_info"])}
    for c, s, query in ours:
        ref_mask = ref["segmentation"][by_key[(c, s)]].bool()
        assert torch.equal(ref_mask, masks[0, query] > 0)


def test_one_pair_per_query_for_tracking_and_top_k() -> None:
    cls, masks = logits(20, 5, seed=7)
    pairs = mask2former_pairs(cls[0], masks[0])
    assert len(pairs.query) == 20  # k = number of queries by default
    per_query = mask2former_scores(cls[0], masks[0], top_k=0, logit_thr=0.0)
    for qi in range(20):
        mine = pairs.score[pairs.query == qi]
        if mine.numel() == 0:
            assert per_query.score[qi] == 0.0
        else:
            best = int(torch.argmax(mine))
            assert per_query.score[qi] == mine[best]
            assert per_query.class_id[qi] == pairs.class_id[pairs.query == qi][best]
    # with k=Q the best pair of a selected query is its argmax class (argmax mode's class)
    arg = argmax_scores(cls[0], masks[0], 0.0)
    sel = per_query.score > 0
    assert torch.equal(per_query.class_id[sel], arg.class_id[sel])
    small = mask2former_scores(cls[0], masks[0], top_k=3, logit_thr=0.0)
    assert int((small.score > 0).sum()) <= 3
    top3 = torch.topk(cls[0].softmax(-1)[:, :-1].flatten(), 3).indices // 5
    assert set(torch.nonzero(small.score > 0).flatten().tolist()) <= set(top3.tolist())
