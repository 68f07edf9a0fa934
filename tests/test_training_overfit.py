"""A short seeded run of the tiny config overfits two synthetic clips: the loss falls at least 5x."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from training_helpers import SceneClips, one_torch_thread, random_vocabulary

from streamseg.config import load_config
from streamseg.training.distributed import DistInfo
from streamseg.training.loop import Trainer

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_tiny_config_overfits_two_clips(tmp_path: Path) -> None:
    import json

    cfg = load_config(ROOT / "configs" / "tiny-test.yaml", [
        "train.lr=0.001", "train.backbone_lr_mult=1.0", "train.warmup=10", "train.batch=2",
        "train.clip_frames=2", "train.num_points=256", "train.log_every=1", "train.checkpoint_every=1000",
        "train.seed=0",
    ])
    clips = SceneClips([(1, 30), (2, 50)])  # two fixed clips, both in every batch
    with one_torch_thread():
        trainer = Trainer(cfg, clips, random_vocabulary(clips.names), tmp_path, DistInfo(), progress=False)
        result = trainer.run(150)
    losses = [json.loads(line)["total"] for line in result.log.read_text().splitlines() if '"event"' not in line]
    assert len(losses) == 150
    start, end = float(np.mean(losses[:3])), float(np.mean(losses[-10:]))
    print(f"overfit: loss {start:.3f} -> {end:.3f} ({start / end:.1f}x)")
    assert start / end >= 5.0, (start, end)
