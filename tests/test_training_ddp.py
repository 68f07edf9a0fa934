"""DDP smoke run: `torchrun --nproc_per_node 2 -m streamseg train` on CPU (gloo), a real subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from training_helpers import write_tiny_synth

from streamseg.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def test_ddp_two_cpu_processes_train_in_lockstep(tmp_path: Path, free_port: int) -> None:
    from streamseg.model.online import OnlineVIS
    from streamseg.predictor.checkpoint import load_checkpoint, load_weights

    write_tiny_synth(tmp_path / "synth")
    torchrun = Path(sys.executable).parent / "torchrun"
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    out = tmp_path / "run"
    cmd = [*launcher, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port),
           "-m", "streamseg", "train", "--config", str(ROOT / "configs" / "tiny-test.yaml"),
           "--data", str(tmp_path / "synth"), "--out", str(out), "--steps", "3", "--no-progress",
           "--set", "train.num_points=256", "--set", "train.log_every=1", "--set", "train.clip_frames=2",
           "--set", "train.batch=1", "--set", "train.checkpoint_every=2"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es) on cpu" in proc.stderr

    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "event" not in r] == [1, 2, 3]  # rank 0 alone writes the log
    end = log[-1]
    assert end["event"] == "end" and end["world_size"] == 2
    assert end["rank_steps"] == [3, 3]  # both ranks ran every step
    assert end["ranks_in_sync"] is True  # and ended with bitwise identical weights

    data = load_checkpoint(out / "model.pt")
    load_weights(OnlineVIS(load_config(ROOT / "configs" / "tiny-test.yaml").model), data)
    state = load_checkpoint(out / "step_0000002.pt")["train_state"]
    assert state["step"] == 2 and state["world_size"] == 2
    assert state["rng_cpu"].shape[0] == 2  # each rank's RNG stream, for an exact resume
    assert not (state["rng_cpu"][0] == state["rng_cpu"][1]).all()  # ranks draw different points
