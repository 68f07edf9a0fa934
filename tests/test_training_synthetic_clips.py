"""Training data rendered on demand (``--data synth://?seed=S``): the stored benchmark's twin."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import one_torch_thread

from streamseg.cli import main as cli_main
from streamseg.data.synth import SynthSpec, write_synthetic
from streamseg.errors import ConfigError
from streamseg.training.datasets import YtvisClipDataset
from streamseg.training.synthetic_clips import SyntheticClipDataset, parse_synthetic_spec

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny-test.yaml")
SPEC = "seed=3&videos=4&frames=8&width=96&height=64&instances=3"


def test_video_i_of_synth_seed_s_is_video_i_that_data_synth_writes(tmp_path: Path) -> None:
    write_synthetic(SynthSpec(out=str(tmp_path), seed=3, videos=4, val_videos=0, frames=8, width=96, height=64,
                              instances=3))
    stored = YtvisClipDataset(tmp_path / "train.json", num_frames=4, max_stride=2)
    rendered = SyntheticClipDataset(parse_synthetic_spec(f"synth://?{SPEC}"), num_frames=4, max_stride=2)
    assert len(rendered) == 4 and rendered.category_names == stored.category_names
    objects = 0
    for i in range(4):
        a = stored.sample_clip(i, np.random.default_rng([7, i]))
        b = rendered.sample_clip(i, np.random.default_rng([7, i]))
        assert a.frame_indices == b.frame_indices
        assert torch.equal(a.images, b.images)  # same scene, same JPEG round trip
        assert torch.equal(a.masks, b.masks) and torch.equal(a.present, b.present)
        assert torch.equal(a.class_ids, b.class_ids) and torch.equal(a.unified_ids, b.unified_ids)
        assert len(set(b.instance_ids.tolist())) == len(b.instance_ids)
        objects += len(b.instance_ids)
    assert objects >= 4  # the comparison saw objects, not empty frames


def test_default_is_endless_and_videos_differ() -> None:
    data = SyntheticClipDataset(parse_synthetic_spec("synth://?seed=2&width=96&height=64"), num_frames=2)
    assert len(data) >= 1_000_000
    a = data.sample_clip(0, np.random.default_rng(0))
    b = data.sample_clip(999_999, np.random.default_rng(0))
    assert a.images.shape == b.images.shape == (2, 3, 64, 96)
    assert not torch.equal(a.images, b.images)
    with pytest.raises(IndexError):
        data.sample_clip(len(data), np.random.default_rng(0))


@pytest.mark.parametrize("spec, words", [
    ("synth://?seeds=1", "unknown key 'seeds'"),
    ("synth://?seed=one", "seed must be an integer"),
    ("synth://somewhere", "expected synth://?key=value"),
    ("synth://?videos=0", "--videos must be >= 1"),
    ("synth://?quality=101", "quality must be in [1, 100]"),
])
def test_bad_specs_name_the_problem(spec: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_synthetic_spec(spec)
    assert words in str(err.value)


def test_train_on_rendered_clips_with_a_stored_held_out_set(tmp_path: Path, capsys) -> None:
    write_synthetic(SynthSpec(out=str(tmp_path / "held"), seed=9, videos=1, val_videos=1, frames=6, width=96,
                              height=64, instances=2))
    out = tmp_path / "run"
    with one_torch_thread():
        assert cli_main(["train", "--config", TINY, "--data", f"synth://?{SPEC}", "--out", str(out), "--steps", "2",
                         "--set", "train.num_points=256", "--set", "train.log_every=1", "--set",
                         "train.clip_frames=2", "--set", "train.batch=2", "--set", "train.target_ratio=1",
                         "--eval-data", str(tmp_path / "held"), "--eval-every", "2",
                         "--no-progress", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "synth/seed3: 4 videos, classes disk, square, triangle, ring, cross" in err
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "total" in r][:2] == [1, 2]
    assert all(np.isfinite(r["total"]) and r["target"] > 0 for r in log if "total" in r)  # target clips too
    evals = [r for r in log if r.get("event") == "eval"]
    assert [r["step"] for r in evals] == [2] and -1.0 <= evals[0]["AP"] <= 1.0  # scored on the stored set
    assert (out / "model.pt").is_file()
    assert cli_main(["train", "--config", TINY, "--data", "synth://?seed=x", "--out", str(tmp_path / "bad")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "seed must be an integer" in lines[0]
