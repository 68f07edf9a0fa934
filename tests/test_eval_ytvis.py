"""The YouTube-VIS metric: hand-computed cases (expected values derived in the comments) and a
cross-check against pycocotools' COCOeval, which it must equal on one-frame videos."""
from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from streamseg.evaluation.ytvis import METRIC_NAMES, evaluate, tube_iou
from tests.eval_helpers import make_gt, rect, result, tube

H = W = 10
SQ = rect(H, W, 0, 4, 0, 4)  # 16 px
OTHER = rect(H, W, 6, 10, 6, 10)  # 16 px, disjoint from SQ


def test_identical_predictions_score_one():
    gt = make_gt(
        [(1, H, W, 3), (2, H, W, 2)],
        [(1, 1, [SQ, SQ, None]), (1, 2, [OTHER, OTHER, OTHER]), (2, 1, [None, OTHER])],
    )
    res = [result(a.video_id, a.category_id, 0.5, [None if s is None else mask_utils.decode(s).astype(bool)
                                                    for s in a.segmentations]) for a in gt.annotations]
    stats = evaluate(gt, res).stats
    # Every tube small (area 16 < 128^2): small = all = 1; no medium/large ground truth -> -1.
    for k in ("AP", "AP50", "AP75", "APs", "AR1", "AR10", "AR100", "ARs"):
        assert stats[k] == pytest.approx(1.0), k
    for k in ("APm", "APl", "ARm", "ARl"):
        assert stats[k] == -1.0, k


def test_disjoint_predictions_score_zero():
    gt = make_gt([(1, H, W, 2)], [(1, 1, [SQ, SQ])])
    stats = evaluate(gt, [result(1, 1, 0.9, [OTHER, OTHER])]).stats
    assert stats["AP"] == 0.0 and stats["AP50"] == 0.0 and stats["AR100"] == 0.0


def test_no_results_scores_zero():
    gt = make_gt([(1, H, W, 2)], [(1, 1, [SQ, SQ])])
    stats = evaluate(gt, []).stats
    assert stats["AP"] == 0.0 and stats["AR100"] == 0.0


def test_tube_missing_a_frame():
    # gt: SQ in frames 0,1,2 (16 px each). dt: SQ in frames 0,1, null in frame 2.
    # tube IoU = (16 + 16) / (16 + 16 + 16) = 2/3 = 0.667: matched at thresholds .50 .55 .60 .65
    # (4 of 10), unmatched at .70 ... .95. A single TP gives precision 1 at every recall point,
    # a single FP gives 0. AP = 4/10 = 0.4, AP50 = 1, AP75 = 0, AR100 = 4/10.
    gt = make_gt([(1, H, W, 3)], [(1, 1, [SQ, SQ, SQ])])
    stats = evaluate(gt, [result(1, 1, 0.9, [SQ, SQ, None])]).stats
    assert stats["AP"] == pytest.approx(0.4)
    assert stats["AP50"] == pytest.approx(1.0)
    assert stats["AP75"] == pytest.approx(0.0)
    assert stats["AR100"] == pytest.approx(0.4)


def test_extra_frame_adds_to_union_and_partial_overlap():
    # gt: SQ in frames 0,1, absent in 2. dt: frame 0 SQ; frame 1 SQ shifted right by 1 column
    # (rows 0-4, cols 1-5: intersection 12, union 20); frame 2 OTHER (16 px, gt absent).
    # tube IoU = (16 + 12) / (16 + 20 + 16) = 28/52 = 0.538: matched at .50 only.
    # AP = 1/10, AP50 = 1, AR100 = 0.1.
    gt = make_gt([(1, H, W, 3)], [(1, 1, [SQ, SQ, None])])
    shifted = rect(H, W, 0, 4, 1, 5)
    stats = evaluate(gt, [result(1, 1, 0.9, [SQ, shifted, OTHER])]).stats
    assert stats["AP"] == pytest.approx(0.1)
    assert stats["AP50"] == pytest.approx(1.0)
    assert stats["AR100"] == pytest.approx(0.1)


def test_wrong_class():
    # The mask is perfect but labelled category 2. Category 1 has a gt and no detection: recall 0,
    # precision 0. Category 2 has no gt: precision -1, left out of the mean. AP = 0, AR = 0.
    gt = make_gt([(1, H, W, 2)], [(1, 1, [SQ, SQ])])
    stats = evaluate(gt, [result(1, 2, 0.9, [SQ, SQ])]).stats
    assert stats["AP"] == 0.0 and stats["AR100"] == 0.0


def test_duplicates_and_max_dets_one():
    # One gt SQ x3 frames. d1 (score .9): SQ, SQ, null -> IoU 2/3. d2 (score .8): exact -> IoU 1.
    # Thresholds .50-.65 (4): d1 TP, d2 FP (gt taken): precision [1, .5] -> envelope [1, .5];
    #   recall is 1 from the first detection on, so every recall point reads precision 1.
    # Thresholds .70-.95 (6): d1 FP, d2 TP: precision [0, .5], recall [0, 1] -> envelope [.5, .5];
    #   every recall point reads .5.
    # AP = (4 * 1 + 6 * .5) / 10 = 0.7. AR100 = 1 (recall 1 at all thresholds).
    # maxDets=1 keeps d1 only: recall 1 at 4 thresholds, 0 at 6 -> AR1 = 0.4.
    gt = make_gt([(1, H, W, 3)], [(1, 1, [SQ, SQ, SQ])])
    res = [result(1, 1, 0.9, [SQ, SQ, None]), result(1, 1, 0.8, [SQ, SQ, SQ])]
    stats = evaluate(gt, res).stats
    assert stats["AP"] == pytest.approx(0.7)
    assert stats["AR100"] == pytest.approx(1.0)
    assert stats["AR10"] == pytest.approx(1.0)
    assert stats["AR1"] == pytest.approx(0.4)


def test_max_dets_hundred_cut():
    # 100 disjoint false positives (1-px masks far from the gt, scores .99 ... ) plus the exact
    # detection. As the 100th best it is kept: TP at rank 100 -> precision 1/100 at recall 1,
    # envelope 0.01 everywhere -> AP = 0.01, AR100 = 1. As the 101st it is cut: AP = 0, AR100 = 0.
    h, w = 40, 40
    g = rect(h, w, 0, 4, 0, 4)
    fps = [rect(h, w, 10 + i // 30, 11 + i // 30, i % 30, i % 30 + 1) for i in range(100)]
    gt = make_gt([(1, h, w, 1)], [(1, 1, [g])])
    kept = [result(1, 1, 0.99 - 0.001 * i, [m]) for i, m in enumerate(fps[:99])] + [result(1, 1, 0.5, [g])]
    stats = evaluate(gt, kept).stats
    assert stats["AP"] == pytest.approx(0.01, abs=1e-9)
    assert stats["AR100"] == pytest.approx(1.0)
    assert stats["AR10"] == 0.0
    cut = [result(1, 1, 0.99 - 0.001 * i, [m]) for i, m in enumerate(fps)] + [result(1, 1, 0.5, [g])]
    stats = evaluate(gt, cut).stats
    assert stats["AP"] == 0.0 and stats["AR100"] == 0.0


def test_score_ties_keep_file_order():
    # Two detections with equal scores; the stable sort keeps their order in the results.
    # FP first then TP: precision [0, .5], recall [0, 1] -> envelope .5 everywhere -> AP = 0.5.
    # TP first then FP: precision [1, .5], recall [1, 1] -> every recall point reads 1 -> AP = 1.
    gt = make_gt([(1, H, W, 1)], [(1, 1, [SQ])])
    fp, tp = result(1, 1, 0.7, [OTHER]), result(1, 1, 0.7, [SQ])
    assert evaluate(gt, [fp, tp]).stats["AP"] == pytest.approx(0.5)
    assert evaluate(gt, [tp, fp]).stats["AP"] == pytest.approx(1.0)


def test_crowd_ground_truth_is_ignored():
    # g1 regular SQ; gc crowd = rows 4-10, all columns (60 px). d2 (score .95) is a 4x4 block
    # inside the crowd region: crowd IoU = 16/16 = 1 -> matched to the crowd -> ignored, not an FP.
    # d1 (score .9) exact on g1 -> TP. Only one non-crowd gt: AP = 1, AR = 1.
    # (Without crowd handling d2 would be an FP ranked first: precision [0, .5] -> AP = 0.5.)
    crowd = rect(H, W, 4, 10, 0, 10)
    inside = rect(H, W, 5, 9, 2, 6)
    gt = make_gt([(1, H, W, 1)], [(1, 1, [SQ]), (1, 1, [crowd], True)])
    res = [result(1, 1, 0.95, [inside]), result(1, 1, 0.9, [SQ])]
    stats = evaluate(gt, res, crowd_rule="coco").stats
    assert stats["AP"] == pytest.approx(1.0)
    assert stats["AR100"] == pytest.approx(1.0)
    # The official YouTube-VIS rule: plain IoU 16/60 with the crowd -> d2 unmatched, an FP ranked
    # first; one regular gt: d2 FP then d1 TP -> precision [0, .5], recall [0, 1] -> AP = 0.5.
    assert evaluate(gt, res).stats["AP"] == pytest.approx(0.5)
    # The same scene with the crowd flag off: d2 is unmatched (IoU 16/60) and ranked first.
    plain = make_gt([(1, H, W, 1)], [(1, 1, [SQ]), (1, 1, [crowd], False)])
    # Now two regular gts: d2 FP, d1 TP -> precision [0, .5], recall [0, .5] -> envelope .5 up to
    # recall .5 (51 of 101 points), 0 beyond -> AP = 0.5 * 51/101.
    assert evaluate(plain, res).stats["AP"] == pytest.approx(0.5 * 51 / 101)


def test_area_ranges():
    # One 300x300 frame, category 1. gts: small 10x10 (100 px), medium 150x150 (22,500 px, in
    # 128^2-256^2), large 260x260 (67,600 px >= 256^2). dts: exact small (.9), exact large (.8),
    # a disjoint medium-sized FP (.7).
    # all: TP, TP, FP over 3 gts -> recall [1/3, 2/3, 2/3], precision [1, 1, 2/3]; recall points
    #   0.00..0.66 (67 of 101) read 1, the rest 0 -> AP = 67/101 at every threshold; AR100 = 2/3.
    # small: only the small gt counts; the large dt matches the (ignored) large gt -> ignored;
    #   the medium FP is unmatched and outside the range -> ignored. APs = 1, ARs = 1.
    # medium: small and large dts match ignored gts -> ignored; the medium FP counts -> APm = 0, ARm = 0.
    # large: symmetric to small -> APl = 1, ARl = 1.
    h = w = 300
    small, medium, large = rect(h, w, 290, 300, 0, 10), rect(h, w, 0, 150, 0, 150), rect(h, w, 0, 260, 0, 260)
    fp_medium = rect(h, w, 150, 300, 150, 300)
    gt = make_gt([(1, h, w, 1)], [(1, 1, [small]), (1, 1, [medium]), (1, 1, [large])])
    res = [result(1, 1, 0.9, [small]), result(1, 1, 0.8, [large]), result(1, 1, 0.7, [fp_medium])]
    stats = evaluate(gt, res).stats
    assert stats["AP"] == pytest.approx(67 / 101)
    assert stats["AR100"] == pytest.approx(2 / 3)
    assert (stats["APs"], stats["ARs"]) == (pytest.approx(1.0), pytest.approx(1.0))
    assert (stats["APm"], stats["ARm"]) == (0.0, 0.0)
    assert (stats["APl"], stats["ARl"]) == (pytest.approx(1.0), pytest.approx(1.0))


def test_tube_area_is_mean_over_present_frames():
    # gt tube: 200x200 (40,000 px) in frame 0, null in frame 1, 10x10 (100 px) in frame 2.
    # Mean over present frames = (40,000 + 100) / 2 = 20,050 -> medium (128^2 = 16,384 ... 65,536).
    # (A mean over all 3 frames, 13,367, would be small.) APm = 1, no small gt -> APs = -1.
    h = w = 256
    big, tiny = rect(h, w, 0, 200, 0, 200), rect(h, w, 246, 256, 246, 256)
    gt = make_gt([(1, h, w, 3)], [(1, 1, [big, None, tiny])])
    stats = evaluate(gt, [result(1, 1, 0.9, [big, None, tiny])]).stats
    assert stats["APm"] == pytest.approx(1.0) and stats["APs"] == -1.0


def test_tube_iou_equals_dense_computation():
    # Random blobby tubes with absent frames, against plain numpy on dense masks:
    # sum_t |d & g| / sum_t |d | g| (an absent frame is an empty mask), and for a crowd g
    # sum_t |d & g| / sum_t |d|.
    rng = np.random.default_rng(7)
    for _ in range(30):
        T_ = int(rng.integers(1, 6))
        d = [None if rng.random() < 0.3 else rng.random((9, 11)) < 0.4 for _ in range(T_)]
        g = [None if rng.random() < 0.3 else rng.random((9, 11)) < 0.4 for _ in range(T_)]
        dd = np.stack([np.zeros((9, 11), bool) if m is None else m for m in d])
        gg = np.stack([np.zeros((9, 11), bool) if m is None else m for m in g])
        inter, union = (dd & gg).sum(), (dd | gg).sum()
        assert tube_iou(tube(d), tube(g)) == pytest.approx(inter / union if union else 0.0, abs=1e-12)
        assert tube_iou(tube(d), tube(g), crowd=True) == pytest.approx(inter / dd.sum() if dd.sum() else 0.0, abs=1e-12)


def _coco_eval(gt, res) -> np.ndarray:
    images = [{"id": v.id, "height": v.height, "width": v.width} for v in gt.videos]
    anns = [
        {
            "id": a.id,
            "image_id": a.video_id,
            "category_id": a.category_id,
            "segmentation": {"size": a.segmentations[0]["size"], "counts": a.segmentations[0]["counts"].decode()},
            "area": float(mask_utils.area(a.segmentations[0])),
            "bbox": [float(x) for x in mask_utils.toBbox(a.segmentations[0])],
            "iscrowd": int(a.iscrowd),
        }
        for a in gt.annotations
    ]
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns, "categories": [{"id": c.id, "name": c.name} for c in gt.categories]}
    coco.createIndex()
    dets = [
        {"image_id": r.video_id, "category_id": r.category_id, "score": r.score,
         "segmentation": {"size": r.segmentations[0]["size"], "counts": r.segmentations[0]["counts"].decode()}}
        for r in res
    ]
    coco_dt = coco.loadRes(dets)
    ev = COCOeval(coco, coco_dt, "segm")
    ev.params.areaRng = [[0, 1e5**2], [0, 128**2], [128**2, 256**2], [256**2, 1e5**2]]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return np.asarray(ev.stats)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_cocoeval_on_one_frame_videos(seed, capsys):
    # On one-frame videos the tube IoU is the mask IoU, so the metric must equal COCO segm AP.
    rng = np.random.default_rng(seed)
    h, w = 420, 420
    videos = [(v, h, w, 1) for v in range(1, 7)]
    gts, res = [], []
    for v in range(1, 7):
        for _ in range(rng.integers(1, 6)):
            cat = int(rng.integers(1, 4))
            side = int(rng.choice([20, 60, 140, 200, 300]))
            y, x = (int(z) for z in rng.integers(0, h - side, 2))
            m = rect(h, w, y, y + side, x, x + side)
            gts.append((v, cat, [m], bool(rng.random() < 0.1)))
            for _ in range(rng.integers(0, 3)):  # jittered detections, some with the wrong class
                dy, dx = (int(z) for z in rng.integers(-side // 5, side // 5 + 1, 2))
                s2 = max(4, side + int(rng.integers(-side // 4, side // 4 + 1)))
                y2, x2 = np.clip(y + dy, 0, h - s2), np.clip(x + dx, 0, w - s2)
                c2 = cat if rng.random() < 0.8 else int(rng.integers(1, 4))
                score = float(np.round(rng.random(), 2))  # rounded: ties happen
                res.append(result(v, c2, score, [rect(h, w, y2, y2 + s2, x2, x2 + s2)]))
        for _ in range(rng.integers(0, 3)):  # stray false positives
            side = int(rng.choice([10, 50, 150]))
            y, x = (int(z) for z in rng.integers(0, h - side, 2))
            res.append(result(v, int(rng.integers(1, 4)), float(np.round(rng.random(), 2)), [rect(h, w, y, y + side, x, x + side)]))
    gt = make_gt(videos, gts, categories=("a", "b", "c"))
    ours = evaluate(gt, res, crowd_rule="coco").stats  # COCOeval's crowd rule
    theirs = _coco_eval(gt, res)
    capsys.readouterr()
    np.testing.assert_allclose([ours[k] for k in METRIC_NAMES], theirs, atol=1e-12)
    assert 0.05 < ours["AP"] < 0.95  # a non-trivial case
