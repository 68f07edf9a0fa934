"""The mask quality head: its IoU targets, its scores, and training it alone on frozen weights."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from training_helpers import one_torch_thread, write_tiny_synth

from streamseg.cli import main as cli_main
from streamseg.config import load_config
from streamseg.errors import ConfigError
from streamseg.model.quality import mask_stats
from streamseg.predictor.postprocess import argmax_scores
from streamseg.training.losses import best_iou, quality_loss

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny-test.yaml")
FAST = ["--set", "train.num_points=256", "--set", "train.log_every=1", "--set", "train.clip_frames=2",
        "--set", "train.batch=1", "--no-progress", "--threads", "1"]


def test_best_iou_is_each_masks_iou_with_the_object_it_overlaps_most() -> None:
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(size=(5, 6, 8)).astype(np.float32))
    gt = torch.from_numpy(rng.random((3, 24, 32)) > 0.6)
    up = F.interpolate(logits[None], size=(24, 32), mode="bilinear", align_corners=False)[0].numpy() >= 0
    g = gt.numpy()
    expect = [max((up[q] & g[n]).sum() / max((up[q] | g[n]).sum(), 1) for n in range(3)) for q in range(5)]
    assert best_iou(logits, gt).numpy() == pytest.approx(np.array(expect), abs=1e-6)
    assert best_iou(logits, gt[:0]).tolist() == [0.0] * 5  # no object on the frame: every mask is wrong
    exact = torch.full((1, 6, 8), -10.0)
    exact[0, 2:4, 2:6] = 10.0
    box = torch.zeros(1, 24, 32, dtype=torch.bool)
    box[0, 8:16, 8:24] = True  # the same box at 4x: bilinear edges land on it
    assert float(best_iou(exact, box)[0]) == pytest.approx(1.0, abs=0.1)


def test_quality_loss_is_bce_against_the_measured_iou() -> None:
    logits = torch.randn(4, 6, 8)
    gt = torch.rand(2, 24, 32) > 0.5
    iou_logits = torch.tensor([0.5, -1.0, 2.0, 0.0])
    target = best_iou(logits, gt)
    expect = -(target * torch.log(torch.sigmoid(iou_logits))
               + (1 - target) * torch.log(1 - torch.sigmoid(iou_logits))).mean()
    assert float(quality_loss(iou_logits, logits, gt)) == pytest.approx(float(expect), rel=1e-5)


def test_mask_stats_inside_probability_area_share_and_unsure_share() -> None:
    logits = torch.full((1, 2, 4, 5), -5.0)
    logits[0, 0, :2, :2] = math.log(0.9 / 0.1)  # 4 cells at p 0.9
    logits[0, 0, 3, 4] = 0.0  # one cell at p 0.5
    stats = mask_stats(logits)[0]
    assert stats[0].tolist() == pytest.approx([(4 * 0.9 + 0.5) / 5, math.log(5 / 20 + 1e-4), 1 / 5], abs=1e-5)
    assert stats[1].tolist() == pytest.approx([0.0, math.log(1e-4), 0.0], abs=1e-6)  # empty mask


def test_scores_with_the_head_rank_by_its_predicted_iou() -> None:
    class_logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 3.0, 0.0], [2.0, 0.0, 0.0]])
    masks = torch.full((3, 4, 4), -4.0)
    masks[0, :2] = 3.0
    masks[1, 1:] = 1.0  # query 2 shows nothing
    iou = torch.tensor([0.0, 2.0, 5.0])
    probs = class_logits.softmax(-1)[:, :-1].max(-1).values
    inside = torch.tensor([torch.sigmoid(torch.tensor(3.0)), torch.sigmoid(torch.tensor(1.0)), 0.0])
    shown = torch.tensor([1.0, 1.0, 0.0])
    mask = argmax_scores(class_logits, masks, 0.0)
    head = argmax_scores(class_logits, masks, 0.0, iou, "head")
    both = argmax_scores(class_logits, masks, 0.0, iou, "both")
    assert mask.rank is None
    for s in (mask, head, both):  # the thresholds' score is the same whatever ranks
        assert s.score.tolist() == pytest.approx((probs * inside).tolist(), abs=1e-6)
    assert head.rank.tolist() == pytest.approx((probs * iou.sigmoid() * shown).tolist(), abs=1e-6)
    assert both.rank.tolist() == pytest.approx((probs * iou.sigmoid() * inside).tolist(), abs=1e-6)
    with pytest.raises(ValueError, match="IoU logits"):
        argmax_scores(class_logits, masks, 0.0, None, "head")


def test_rank_scores_set_the_published_score_and_not_the_births() -> None:
    from streamseg.tracking.config import TrackerConfig
    from streamseg.tracking.lifecycle import TrackLifecycle
    from streamseg.tracking.match import EmbeddingMatcher

    cfg = TrackerConfig(birth_threshold=0.5, keep_threshold=0.3, score_ramp=0)
    life = TrackLifecycle(cfg)
    state = life.new_state(3)
    scores = np.array([0.9, 0.6, 0.2])
    rank = np.array([0.3, 0.8, 0.9])  # slot 2 ranks high but its score is below the birth threshold
    first = life.update(state, scores, None, rank)
    assert first.visible.tolist() == [True, True, False]
    assert first.score[:2].tolist() == pytest.approx([0.3, 0.8])
    second = life.update(state, scores, None, np.array([0.5, 0.4, 0.9]))
    assert second.score[:2].tolist() == pytest.approx([0.4, 0.6])  # running means of the ranks
    matcher = EmbeddingMatcher(cfg)
    ms = matcher.new_state(3, 2)
    out = matcher.update(ms, np.eye(3, 2), scores, None, rank)
    assert out.born.tolist() == [True, True, False]
    assert out.score.tolist() == pytest.approx([0.3, 0.8, 0.0])


def test_head_quality_without_a_head_is_refused_in_one_line() -> None:
    from streamseg.predictor.segmenter import build_segmenter

    cfg = load_config(TINY, ["postprocess.quality=head"])
    with pytest.raises(ConfigError, match="model.quality_head: true"):
        build_segmenter(cfg)
    with pytest.raises(ConfigError, match="quality must be"):
        load_config(TINY, ["postprocess.quality=iou"])


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_tiny_synth(root)
    return root


def test_trainable_head_alone_leaves_every_other_weight_bit_for_bit(synth: Path, tmp_path: Path, capsys) -> None:
    """`--init BASE.pt --set model.quality_head=true --set train.trainable=[quality_head]`: the
    head is new and trained, the rest is the base's exactly, and the segmenter then scores with it."""
    base = tmp_path / "base"
    with one_torch_thread():
        assert cli_main(["train", "--config", TINY, "--data", str(synth), "--out", str(base), "--steps", "1",
                         *FAST]) == 0
        assert cli_main(["train", "--config", TINY, "--data", str(synth), "--out", str(tmp_path / "q"),
                         "--steps", "3", "--init", str(base / "model.pt"), "--set", "model.quality_head=true",
                         "--set", "train.trainable=[quality_head]", "--set", "train.lr=0.01",
                         "--set", "train.warmup=0", *FAST]) == 0
    before = torch.load(base / "model.pt", weights_only=True)["state_dict"]
    after = torch.load(tmp_path / "q" / "model.pt", weights_only=True)
    head = [k for k in after["state_dict"] if k.startswith("quality_head.")]
    assert head and all(k not in before for k in head)
    assert all(torch.equal(before[k], after["state_dict"][k]) for k in before)
    log = (tmp_path / "q" / "train_log.jsonl").read_text()
    assert '"quality": ' in log

    from streamseg.predictor.segmenter import build_segmenter

    cfg = load_config(TINY, ["model.quality_head=true", "postprocess.quality=head"])
    seg = build_segmenter(cfg, checkpoint=str(tmp_path / "q" / "model.pt"))
    frame = torch.zeros(1, 64, 96, 3, dtype=torch.uint8)
    with torch.no_grad():
        out = seg.model.step(seg.model.new_state(1), frame, seg._text_tensor(seg.vocabulary))
    assert out.pred_quality is not None and out.pred_quality.shape == (1, cfg.model.num_queries)
    expect = seg.model.quality_head(seg.model.decoder.norm(out.query_embed), out.pred_masks)
    assert torch.allclose(out.pred_quality, expect)


def test_trainable_that_matches_nothing_is_a_config_error(synth: Path, tmp_path: Path, capsys) -> None:
    with one_torch_thread():
        code = cli_main(["train", "--config", TINY, "--data", str(synth), "--out", str(tmp_path / "x"),
                         "--steps", "1", "--set", "train.trainable=[quality_head]", *FAST])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "matches no parameter" in err[-1]
