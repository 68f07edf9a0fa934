"""Training loop: schedule, optimiser groups, class masking, and `streamseg train` with --resume."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from training_helpers import one_torch_thread, write_tiny_synth

from streamseg.cli import main as cli_main
from streamseg.config import load_config
from streamseg.training.config import TrainConfig
from streamseg.training.losses import FrameTargets, LossWeights, VideoCriterion, class_loss, mask_classes
from streamseg.training.schedule import lr_factor, param_groups

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny-test.yaml")
FAST = ["--set", "train.num_points=256", "--set", "train.log_every=1", "--set", "train.clip_frames=2",
        "--set", "train.batch=1", "--no-progress", "--threads", "1"]


def test_lr_factor_warmup_then_cosine_or_steps() -> None:
    cfg = TrainConfig(steps=110, warmup=10)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(60, cfg) == pytest.approx(0.5)
    assert lr_factor(110, cfg) == pytest.approx(0.0, abs=1e-12)
    step = TrainConfig(steps=100, warmup=0, lr_schedule="step", lr_milestones=[50, 80], lr_gamma=0.1)
    assert [lr_factor(s, step) for s in (0, 49, 50, 79, 80)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])


def test_param_groups_backbone_multiplier_and_no_decay_on_norms() -> None:
    model = torch.nn.ModuleDict({
        "backbone": torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)),
        "head": torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4)),
        "query": torch.nn.Embedding(3, 4),
    })
    cfg = TrainConfig(lr=1e-3, weight_decay=0.05, backbone_lr_mult=0.1)
    groups = param_groups(model, cfg)
    where = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert where[id(model["backbone"][0].weight)] == pytest.approx((1e-4, 0.05))
    assert where[id(model["backbone"][1].weight)] == pytest.approx((1e-4, 0.0))
    assert where[id(model["head"][0].weight)] == pytest.approx((1e-3, 0.05))
    assert where[id(model["head"][0].bias)] == pytest.approx((1e-3, 0.0))
    assert where[id(model["head"][1].weight)] == pytest.approx((1e-3, 0.0))
    assert where[id(model["query"].weight)] == pytest.approx((1e-3, 0.0))
    assert len(where) == sum(1 for _ in model.parameters())


def test_classes_outside_a_datasets_taxonomy_are_neither_rewarded_nor_punished() -> None:
    # 3 classes + no-object; the clip's dataset annotates classes 0 and 1 only.
    target = torch.tensor([[0, 3]])
    mask = torch.tensor([[True, True, False]])
    logits = torch.tensor([[[5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 5.0]]])
    base = float(class_loss(mask_classes(logits, mask), target, 0.1))
    louder = logits.clone()
    louder[0, 1, 2] = 50.0  # query 1 now shouts the unannotated class 2 over no-object
    assert float(class_loss(mask_classes(louder, mask), target, 0.1)) == pytest.approx(base, abs=1e-6)
    assert float(class_loss(louder, target, 0.1)) > base + 1.0  # without the mask it would be punished


def test_tcm_supervision_ignores_unannotated_classes() -> None:
    @torch.no_grad()
    def run(scores: torch.Tensor, mask: torch.Tensor | None) -> float:
        out = type("Out", (), {})()
        out.pred_logits = torch.zeros(1, 2, 4)
        out.pred_masks = torch.zeros(1, 2, 8, 8)
        out.aux, out.taxo_logits, out.tcm_scores = [], None, scores
        tgt = FrameTargets(torch.tensor([0]), torch.ones(1, 8, 8, dtype=torch.bool), torch.tensor([1]))
        crit = VideoCriterion(LossWeights(num_points=64, cls=0, mask=0, dice=0, taxo=0))
        return float(crit([out], [[tgt]], class_mask=mask)["tcm"])

    mask = torch.tensor([[True, True, False]])
    right = torch.tensor([[1.0, 0.0, 0.9]])  # class 2 is unannotated: its score must not matter
    assert run(right, mask) < 1e-4
    assert run(right, None) > 0.5


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_tiny_synth(root)
    return root


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_writes_checkpoints_and_resume_replays_exactly(synth: Path, tmp_path: Path) -> None:
    from streamseg.model.online import OnlineVIS
    from streamseg.predictor.checkpoint import load_checkpoint, load_weights

    full, resumed = tmp_path / "full", tmp_path / "resumed"
    with one_torch_thread():
        assert cli_main(["train", "--config", TINY, "--data", str(synth), "--out", str(full), "--steps", "4",
                         "--set", "train.checkpoint_every=2", *FAST]) == 0
        assert (full / "step_0000002.pt").is_file() and (full / "last.pt").is_file()
        assert cli_main(["train", "--config", TINY, "--data", str(synth), "--out", str(resumed), "--steps", "4",
                         "--resume", str(full / "step_0000002.pt"), *FAST]) == 0
    log = _log(resumed / "train_log.jsonl")
    assert [r["step"] for r in log if "event" not in r] == [3, 4]  # continued from step 2
    assert log[-1]["event"] == "end" and log[-1]["rank_steps"] == [2]
    # CPU seconds of the process, from this run's start: they grow step to step and the end holds
    # them all (a recipe's CPU-minutes are the end records' sum over its resumed runs)
    cpu = [r["cpu_s"] for r in log]
    assert cpu == sorted(cpu) and 0 < cpu[0] and cpu[-1] > 0

    a, b = load_checkpoint(full / "model.pt"), load_checkpoint(resumed / "model.pt")
    assert "train_state" not in a  # the deployable model carries no optimiser state
    assert load_checkpoint(full / "last.pt")["train_state"]["step"] == 4
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key  # bitwise: same data, same RNG, same steps
    start = load_checkpoint(full / "step_0000002.pt")["state_dict"]
    assert any(not torch.equal(start[k], v) for k, v in a["state_dict"].items())  # and it did train

    cfg = load_config(TINY)
    model = OnlineVIS(cfg.model)
    load_weights(model, a)  # the checkpoint fits the config's model
    assert a["vocabulary"]["names"] == ["disk", "square", "triangle", "ring", "cross"]


def test_weights_export_keeps_the_model_and_drops_only_the_resume_state(synth: Path, tmp_path: Path,
                                                                        capsys) -> None:
    from streamseg.model.online import OnlineVIS
    from streamseg.predictor.checkpoint import load_checkpoint, load_weights

    run, out = tmp_path / "run", tmp_path / "ship" / "model.pt"
    with one_torch_thread():
        assert cli_main(["train", "--config", TINY, "--data", str(synth), "--out", str(run), "--steps", "2",
                         "--set", "train.checkpoint_every=1", *FAST]) == 0
    step = run / "step_0000001.pt"
    capsys.readouterr()
    assert cli_main(["weights", "export", str(step), "-o", str(out)]) == 0
    assert "left out train_state" in capsys.readouterr().out
    src, exported = load_checkpoint(step), load_checkpoint(out)
    assert "train_state" in src and "train_state" not in exported
    assert set(src) - set(exported) == {"train_state"}
    assert exported["config"] == src["config"] and exported["vocabulary"]["names"] == src["vocabulary"]["names"]
    assert torch.equal(exported["vocabulary"]["embeddings"], src["vocabulary"]["embeddings"])
    assert exported["state_dict"].keys() == src["state_dict"].keys()
    for key, value in src["state_dict"].items():
        assert torch.equal(value, exported["state_dict"][key]), key  # step 1's weights, not the final ones
    assert out.stat().st_size < step.stat().st_size
    load_weights(OnlineVIS(load_config(TINY).model), exported)  # fits the config's model

    again = tmp_path / "again.pt"  # an inference checkpoint passes through unchanged
    assert cli_main(["weights", "export", str(out), "-o", str(again)]) == 0
    assert "left out nothing" in capsys.readouterr().out

    not_ckpt = tmp_path / "notes.txt"
    not_ckpt.write_text("not a checkpoint")
    for bad, needle in [(tmp_path / "missing.pt", "checkpoint not found"), (not_ckpt, "not a weights-only")]:
        target = tmp_path / "bad.pt"
        assert cli_main(["weights", "export", str(bad), "-o", str(target)]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1 and not target.exists()


def test_train_errors_are_one_line(synth: Path, tmp_path: Path, capsys) -> None:
    assert cli_main(["train", "--config", TINY, "--data", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("streamseg: error: ") and "nope" in err[0]
    assert cli_main(["train", "--config", TINY, "--data", str(synth), "--ratios", "1,x"]) == 2
    assert "--ratios" in capsys.readouterr().err
    assert cli_main(["train", "--config", TINY, "--data", str(synth), "--data", str(synth),
                     "--ratios", "1"]) == 2
    assert "--ratios has 1 values for 2 datasets" in capsys.readouterr().err
    assert cli_main(["train", "--config", TINY, "--data", str(synth), "--resume", str(tmp_path / "x.pt")]) == 2
    assert "--resume checkpoint not found" in capsys.readouterr().err


def test_time_limit_stops_early_and_still_writes_the_model(tmp_path: Path) -> None:
    from training_helpers import SceneClips, random_vocabulary

    from streamseg.training.distributed import DistInfo
    from streamseg.training.loop import Trainer

    cfg = load_config(TINY, ["train.num_points=64", "train.clip_frames=1", "train.batch=1"])
    clips = SceneClips([(1, 30)])
    with one_torch_thread():
        result = Trainer(cfg, clips, random_vocabulary(clips.names), tmp_path, DistInfo(), progress=False).run(
            1000, max_seconds=0.0)
    assert result.step == 1 and result.checkpoint.is_file()
    log = _log(result.log)
    assert log[0]["step"] == 1 and log[-1] == {**log[-1], "event": "end", "step": 1}


def test_joint_batches_carry_unified_labels_and_each_datasets_class_mask(tmp_path: Path) -> None:
    import numpy as np

    from streamseg.data.synth import SynthSpec, write_synthetic
    from streamseg.training.clips import DatasetClips

    write_synthetic(SynthSpec(out=str(tmp_path), videos=2, val_videos=0, frames=4, width=96, height=64,
                              instances=3, split=3))
    cfg = load_config(TINY, ["train.clip_frames=2"])
    clips = DatasetClips([str(tmp_path / f"train_{k}.json") for k in (1, 2, 3)], cfg, ratios=[1, 1, 0.75])
    assert clips.names == ["disk", "square", "triangle", "ring", "cross"]
    expected = {  # the split's taxonomies, as unified-class masks
        ("disk", "square", "triangle"), ("square", "triangle", "ring"), ("ring", "cross", "disk")}
    seen = set()
    for step in range(6):
        batch = clips.sample(np.random.default_rng([0, 0, step]), 2, 2)
        assert batch.images.shape == (2, 2, 3, 64, 96) and batch.images.dtype == torch.uint8
        for b in range(2):
            allowed = {clips.names[k] for k in torch.nonzero(batch.class_mask[b]).flatten().tolist()}
            seen.add(tuple(n for n in clips.names if n in allowed))
            for frame in batch.targets:
                tgt = frame[b]
                assert {clips.names[k] for k in tgt.labels.tolist()} <= allowed
                assert tgt.masks.shape[1:] == (64, 96) and tgt.masks.flatten(1).any(1).all()
    assert seen <= {tuple(n for n in clips.names if n in e) for e in expected} and len(seen) >= 2
    again = clips.sample(np.random.default_rng([0, 0, 3]), 2, 2)  # a step's batch is reproducible
    first = clips.sample(np.random.default_rng([0, 0, 3]), 2, 2)
    assert torch.equal(again.images, first.images)


def test_sigint_finishes_the_step_and_saves_a_resumable_checkpoint(synth: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "streamseg", "train", "--config", TINY, "--data", str(synth),
                             "--out", str(out), "--steps", "100000", *FAST], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "train_log.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (log.is_file() and len(log.read_text().splitlines()) >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "interrupted at step" in err
    from streamseg.predictor.checkpoint import load_checkpoint

    step = load_checkpoint(out / "last.pt")["train_state"]["step"]
    assert 2 <= step < 100000
    records = _log(log)
    assert records[-1]["event"] == "end" and records[-1]["rank_steps"] == [step]
    assert (out / "losses.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the run's plots
    # and the run resumes from it
    assert cli_main(["train", "--config", TINY, "--data", str(synth), "--out", str(tmp_path / "more"),
                     "--steps", str(step + 1), "--resume", str(out / "last.pt"), *FAST]) == 0
    assert [r["step"] for r in _log(tmp_path / "more" / "train_log.jsonl") if "event" not in r] == [step + 1]


def test_held_out_ap_is_logged_during_training_and_matches_streamseg_eval(synth: Path, tmp_path: Path,
                                                                          capsys) -> None:
    out = tmp_path / "run"
    with one_torch_thread():
        assert cli_main(["train", "--config", TINY, "--data", str(synth), "--out", str(out), "--steps", "4",
                         "--eval-data", str(synth), "--eval-every", "2", *FAST]) == 0
    evals = [r for r in _log(out / "train_log.jsonl") if r.get("event") == "eval"]
    assert [r["step"] for r in evals] == [2, 4]  # every 2 steps, and at the end
    assert all(r["eval_videos"] == 1 and -1.0 <= r["AP"] <= 1.0 for r in evals)
    assert "held-out AP" in capsys.readouterr().err
    assert (out / "ap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The last record scores the final model exactly as `streamseg eval` does.
    assert cli_main(["eval", "--config", TINY, "--checkpoint", str(out / "model.pt"), "--data", str(synth),
                     "--json", "--max-videos", "1"]) == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("AP", "AP50", "AP75", "AR1", "AR10"):
        assert evals[-1][key] == pytest.approx(stats[key], abs=1e-4), key


def test_eval_data_errors_before_training(synth: Path, tmp_path: Path, capsys) -> None:
    assert cli_main(["train", "--config", TINY, "--data", str(synth), "--out", str(tmp_path / "r"),
                     "--eval-data", str(tmp_path / "missing"), *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0]
    assert not (tmp_path / "r").exists()


def test_init_loads_what_fits_and_lists_the_new_tensors(synth: Path, tmp_path: Path, capsys) -> None:
    first = tmp_path / "first"
    with one_torch_thread():
        assert cli_main(["train", "--config", TINY, "--data", str(synth), "--out", str(first), "--steps", "1",
                         *FAST]) == 0
    data = torch.load(first / "model.pt", weights_only=True)
    dropped = [k for k in data["state_dict"] if k.startswith("target_encoder.")]
    assert dropped
    for k in dropped:  # as an imported image model lacks the target encoder
        del data["state_dict"][k]
    torch.save(data, tmp_path / "partial.pt")
    capsys.readouterr()
    with one_torch_thread():
        assert cli_main(["train", "--config", TINY, "--data", str(synth), "--out", str(tmp_path / "second"),
                         "--steps", "1", "--init", str(tmp_path / "partial.pt"), *FAST]) == 0
    line = next(x for x in capsys.readouterr().err.splitlines() if "initialised" in x)
    total = len(data["state_dict"]) + len(dropped)
    assert f"initialised {total - len(dropped)}/{total} tensors" in line
    groups = {".".join(k.split(".")[:2]) for k in dropped}
    assert all(g in line.split("new: ", 1)[1] for g in groups)


def test_stride2_mask_features_train_from_a_stride4_model(synth: Path, tmp_path: Path, capsys) -> None:
    """`--set model.mask_stride=2 --init STRIDE4.pt`: every stride-4 tensor is reused, the fine
    branch is new, and one step of training moves its zero-initialised last norm."""
    first = tmp_path / "first"
    with one_torch_thread():
        assert cli_main(["train", "--config", TINY, "--data", str(synth), "--out", str(first), "--steps", "1",
                         *FAST]) == 0
    capsys.readouterr()
    with one_torch_thread():
        assert cli_main(["train", "--config", TINY, "--data", str(synth), "--out", str(tmp_path / "fine"),
                         "--steps", "1", "--init", str(first / "model.pt"), "--set", "model.mask_stride=2",
                         *FAST]) == 0
    line = next(x for x in capsys.readouterr().err.splitlines() if "initialised" in x)
    n = len(torch.load(first / "model.pt", weights_only=True)["state_dict"])
    assert f"initialised {n}/{n + 6} tensors" in line and "new: pixel_decoder.fine (6)" in line
    trained = torch.load(tmp_path / "fine" / "model.pt", weights_only=True)
    assert trained["config"]["model"]["mask_stride"] == 2
    assert trained["state_dict"]["pixel_decoder.fine.1.1.weight"].abs().sum() > 0
