"""The training loop of `streamseg train`: online clip decoding, losses, AdamW, checkpoints, resume.

One step: every process (DDP rank) draws ``batch`` clips of ``clip_frames`` frames, decodes them
frame by frame through ``OnlineVIS.forward_clip`` (the exact inference path, with gradients),
computes the GenVIS-assigned Mask2Former + TMT-VIS losses, and takes one AdamW step on the
all-reduced gradients. Rank 0 alone logs (tqdm + JSON lines) and writes checkpoints.

Resuming is exact: a periodic checkpoint carries the optimiser, scheduler, step and every rank's
RNG state, and the data of step s is drawn from a generator seeded by (seed, rank, s), so a resumed
run sees the same clips as an uninterrupted one.
"""
from __future__ import annotations

import json
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist

from streamseg.errors import CheckpointError, ConfigError
from streamseg.interface import Vocabulary
from streamseg.training.distributed import DistInfo, all_reduce_mean, barrier, wrap_ddp
from streamseg.training.interrupt import StopRequest
from streamseg.training.losses import FrameTargets, LossWeights, VideoCriterion
from streamseg.training.matcher import MatchCosts
from streamseg.training.schedule import build_optimizer, build_scheduler

TRAIN_STATE_FORMAT = "streamseg-train-state"
TRAIN_STATE_VERSION = 1
LOSS_KEYS = ("total", "cls", "mask", "dice", "taxo", "tcm", "target", "quality")


@dataclass
class ClipBatch:
    """``batch`` clips of ``T`` frames, ready for forward_clip, with their ground truth."""

    images: torch.Tensor  # (T, B, 3, H, W) or (T, B, H, W, 3) uint8 RGB
    targets: list[list[FrameTargets]]  # [t][b]; labels index the unified vocabulary
    class_mask: torch.Tensor | None = None  # (B, K) bool: classes annotated in each clip's dataset
    targets_sample: Any = None  # training.target_clips.TargetSample on target clips, else None


class ClipProvider(Protocol):
    """Where the loop gets its clips from (the multi-dataset sampler adapts to this)."""

    names: list[str]  # the unified vocabulary (union of the datasets' class names)

    def sample(self, rng: np.random.Generator, batch: int, clip_frames: int) -> ClipBatch:
        """Draw ``batch`` clips using only ``rng`` for randomness (so a step is reproducible)."""


@dataclass
class TrainResult:
    step: int
    checkpoint: Path  # the final model (no optimiser state: small, what `eval` and the demo load)
    log: Path
    seconds: float
    first_loss: float | None
    last_loss: float | None
    ranks_in_sync: bool = True  # every DDP rank ended with bitwise identical weights
    cpu_seconds: float = 0.0  # this process's CPU time over the run (its threads summed)


def criterion_from_config(cfg: Any) -> VideoCriterion:
    t = cfg.train
    weights = LossWeights(
        cls=t.class_weight, mask=t.mask_weight, dice=t.dice_weight, taxo=t.taxo_weight,
        tcm=t.tcm_weight, no_object=t.no_object_weight, num_points=t.num_points,
        oversample_ratio=t.oversample_ratio, importance_sample_ratio=t.importance_sample_ratio,
        quality=t.quality_weight, neighbour_points=t.neighbour_points,
    )
    costs = MatchCosts(class_weight=t.class_weight, mask_weight=t.mask_weight,
                       dice_weight=t.dice_weight, num_points=t.num_points)
    return VideoCriterion(weights, costs)


def freeze_except(model: torch.nn.Module, prefixes: list[str]) -> None:
    """Leave only the parameters under ``prefixes`` trainable (empty: all); none matching is a
    ConfigError (a typo would otherwise train nothing for hours)."""
    if not prefixes:
        return
    names = [n for n, _ in model.named_parameters() if n.startswith(tuple(prefixes))]
    if not names:
        raise ConfigError(f"train.trainable {prefixes} matches no parameter of the model "
                          f"(e.g. quality_head needs model.quality_head: true)")
    for name, p in model.named_parameters():
        p.requires_grad_(name in names)


def step_rng(seed: int, rank: int, step: int) -> np.random.Generator:
    """The data generator of one step on one rank: a pure function of (seed, rank, step)."""
    return np.random.default_rng([seed, rank, step])


class Trainer:
    """Holds the model, optimiser and bookkeeping of one training run."""

    def __init__(self, config: Any, provider: ClipProvider, vocabulary: Vocabulary, out_dir: str | Path,
                 info: DistInfo, progress: bool = True) -> None:
        from streamseg.model.online import OnlineVIS

        self.cfg = config
        self.tcfg = config.train
        self.provider = provider
        self.vocabulary = vocabulary
        self.out = Path(out_dir)
        self.info = info
        self.progress = progress and info.is_main
        torch.manual_seed(self.tcfg.seed)  # identical initial weights on every rank
        self.model = OnlineVIS(config.model).to(info.device)
        freeze_except(self.model, self.tcfg.trainable)
        self.ddp = wrap_ddp(self.model, info)
        self.optimizer = build_optimizer(self.model, self.tcfg)
        self.scheduler = build_scheduler(self.optimizer, self.tcfg)
        self.use_amp = self.tcfg.amp and info.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if self.use_amp else None
        self.criterion = criterion_from_config(config)
        self.text_emb = torch.from_numpy(np.asarray(vocabulary.embeddings, dtype=np.float32)).to(info.device)
        self.step = 0
        self.heldout = None
        if self.tcfg.eval_data and info.is_main:
            from streamseg.training.heldout import HeldOutEval

            self.heldout = HeldOutEval(self.tcfg.eval_data, config, self.tcfg.eval_videos)
        torch.manual_seed(self.tcfg.seed * 1000 + 17 + info.rank)  # per-rank stream for points/dropout

    # ------------------------------------------------------------------ one step
    def train_step(self, batch: ClipBatch) -> dict[str, float]:
        self.ddp.train()
        images = batch.images.to(self.info.device, non_blocking=True)
        class_mask = batch.class_mask.to(self.info.device) if batch.class_mask is not None else None
        amp = torch.autocast("cuda", dtype=torch.float16) if self.use_amp else nullcontext()
        sample = batch.targets_sample
        prompts, prompt_frame = None, 0
        if sample is not None:
            h, w = images.shape[-2:] if images.shape[2] == 3 else images.shape[2:4]
            in_h, in_w = self.model.input_size(int(h), int(w))
            prompts = [[p.to_input(int(h), int(w), in_h, in_w) for p in row] for row in sample.prompts]
            prompt_frame = sample.prompt_frame
        with amp:
            outputs = self.ddp(images, self.text_emb, prompts, prompt_frame)
        terms = self.criterion(outputs, batch.targets, class_mask=class_mask)
        terms["target"] = (self._target_loss(outputs, sample) if sample is not None
                           else terms["total"].new_zeros(()))
        terms["total"] = terms["total"] + terms["target"]
        loss = terms["total"]
        self.optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss) and self.scaler is None:  # (fp16 overflows are the scaler's job)
            raise FloatingPointError(f"training diverged: loss is {float(loss)} at step {self.step} "
                                     f"(lower train.lr or raise train.warmup)")
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        grad_norm = self._clip_gradients()
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        values = {k: float(terms[k].detach()) for k in LOSS_KEYS}
        values["grad_norm"] = grad_norm
        return values

    def _target_loss(self, outputs: list, sample: Any) -> torch.Tensor:
        """BCE + dice (Mask2Former's point-sampled mask losses) of each prompted object's target
        query against its ground truth, every decoder layer, frames from the prompt frame on."""
        from streamseg.training.losses import mask_losses

        w = self.criterion.weights
        total = outputs[0].pred_masks.new_zeros(())
        frames = 0
        for t in range(sample.prompt_frame, len(outputs)):
            out = outputs[t]
            gt = sample.masks[t].to(out.pred_masks.device)  # (B, k, H, W)
            b, k = gt.shape[:2]
            tgt = gt.reshape(b * k, *gt.shape[2:])
            layers = out.target_aux or [out.target_masks]
            for pred in layers:
                bce, dice = mask_losses(pred.reshape(b * k, *pred.shape[2:]), tgt, float(b * k), w)
                total = total + w.mask * bce + w.dice * dice
            frames += 1
        return self.tcfg.target_weight * total / max(frames, 1)

    def _clip_gradients(self) -> float:
        params = [p for p in self.model.parameters() if p.grad is not None]
        if not params:
            return 0.0
        max_norm = self.tcfg.grad_clip if self.tcfg.grad_clip > 0 else math.inf
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))

    # ------------------------------------------------------------------ the run
    def run(self, total_steps: int, max_seconds: float | None = None) -> TrainResult:
        """Train up to ``total_steps`` (or until ``max_seconds`` of training have passed: a bounded
        run on a CPU still ends with its checkpoints written)."""
        from tqdm import tqdm

        t = self.tcfg
        log_path = self.out / t.log
        if self.info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            if self.step == 0:
                log_path.write_text("")  # a fresh run starts a fresh log; a resumed one appends
        start_step = self.step
        bar = tqdm(total=total_steps, initial=start_step, disable=not self.progress, unit="step",
                   dynamic_ncols=True, desc="train")
        first_loss = last_loss = None
        window: list[dict[str, float]] = []
        t_start = time.perf_counter()
        t_last = t_start
        # CPU seconds of this process (all its threads): a recipe's cost in CPU-minutes, read off
        # the log whatever else shared the cores (wall time stretches under contention)
        cpu_start = time.process_time()
        with StopRequest() as stop:
            try:
                while self.step < total_steps:
                    batch = self.provider.sample(step_rng(t.seed, self.info.rank, self.step), t.batch, t.clip_frames)
                    values = self.train_step(batch)
                    window.append(values)
                    bar.update(1)
                    time_up = (max_seconds is not None and self._time_is_up(time.perf_counter() - t_start, max_seconds)) \
                        or stop.requested
                    if self.step % t.log_every == 0 or self.step == total_steps or self.step == start_step + 1 or time_up:
                        mean = {k: float(np.mean([v[k] for v in window])) for k in window[0]}
                        mean = all_reduce_mean(mean, self.info)
                        now = time.perf_counter()
                        record = {"step": self.step, "lr": max(g["lr"] for g in self.optimizer.param_groups),
                                  **{k: round(v, 6) for k, v in mean.items()},
                                  "steps_per_s": round(len(window) / max(now - t_last, 1e-9), 4),
                                  "elapsed_s": round(now - t_start, 2),
                                  "cpu_s": round(time.process_time() - cpu_start, 2)}
                        window, t_last = [], now
                        if first_loss is None:
                            first_loss = mean["total"]
                        last_loss = mean["total"]
                        if self.info.is_main:
                            bar.set_postfix({k: f"{mean[k]:.3f}" for k in LOSS_KEYS})
                            with open(log_path, "a") as fh:
                                fh.write(json.dumps(record) + "\n")
                    if self.step % t.checkpoint_every == 0 and self.step < total_steps:
                        self.save(self.out / f"step_{self.step:07d}.pt", with_state=True)
                        self._prune_checkpoints()
                    if self.step % t.eval_every == 0 and self.step < total_steps and not time_up:
                        self._evaluate(log_path, time.perf_counter() - t_start)
                    if time_up:
                        break
            finally:
                bar.close()
        if stop.requested and self.info.is_main:
            print(f"train: interrupted at step {self.step}; resumable checkpoint {self.out / 'last.pt'}",
                  file=sys.stderr, flush=True)
        self.save(self.out / "last.pt", with_state=True)
        final = self.out / "model.pt"
        self.save(final, with_state=False)
        self._evaluate(log_path, time.perf_counter() - t_start)
        seconds = time.perf_counter() - t_start
        summary = {**self._end_summary(start_step, seconds), "cpu_s": round(time.process_time() - cpu_start, 2)}
        if self.info.is_main:
            with open(log_path, "a") as fh:
                fh.write(json.dumps(summary) + "\n")
            from streamseg.training.plots import plot_run

            plot_run(log_path, self.out, LOSS_KEYS)
        return TrainResult(self.step, final, log_path, seconds, first_loss, last_loss,
                           bool(summary["ranks_in_sync"]), float(summary["cpu_s"]))

    def _evaluate(self, log_path: Path, elapsed: float) -> None:
        """Held-out AP of the model as it is now, as one "eval" log record (rank 0; the other
        ranks wait at the barrier, so every rank resumes training together)."""
        if self.tcfg.eval_data:
            if self.heldout is not None:
                import random

                # Inference draws no randomness, but keep the training streams untouched anyway.
                torch_state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
                stats = self.heldout(self.model, self.info.device)
                torch.set_rng_state(torch_state)
                np.random.set_state(np_state)
                random.setstate(py_state)
                record = {"event": "eval", "step": self.step, "elapsed_s": round(elapsed, 2), **stats}
                with open(log_path, "a") as fh:
                    fh.write(json.dumps(record) + "\n")
                print(f"train: step {self.step}: held-out AP {stats['AP']:.3f} (AP50 {stats['AP50']:.3f}, "
                      f"{stats['eval_videos']} videos, {stats['eval_s']:.0f} s)", file=sys.stderr, flush=True)
            barrier(self.info)

    def _time_is_up(self, elapsed: float, limit: float) -> bool:
        """Every rank stops at the same step: rank clocks differ, so they agree on it."""
        up = torch.tensor([1.0 if elapsed >= limit else 0.0], device=self.info.device)
        if self.info.distributed:
            dist.all_reduce(up, op=dist.ReduceOp.MAX)
        return bool(up.item() > 0)

    def _end_summary(self, start_step: int, seconds: float) -> dict[str, Any]:
        """The run's last log record: steps done by every rank and whether their weights are
        bitwise identical (DDP must keep them so; a mismatch means a desynchronised run)."""
        steps = torch.tensor([self.step - start_step], dtype=torch.long, device=self.info.device)
        flat = torch.cat([p.detach().flatten().float() for p in self.model.parameters()])
        in_sync = True
        rank_steps = [int(steps.item())]
        if self.info.distributed:
            parts = [torch.empty_like(steps) for _ in range(self.info.world_size)]
            dist.all_gather(parts, steps)
            rank_steps = [int(x.item()) for x in parts]
            high, low = flat.clone(), flat.clone()
            dist.all_reduce(high, op=dist.ReduceOp.MAX)
            dist.all_reduce(low, op=dist.ReduceOp.MIN)
            in_sync = bool(torch.equal(high, low))
        return {"event": "end", "step": self.step, "world_size": self.info.world_size,
                "rank_steps": rank_steps, "ranks_in_sync": in_sync, "seconds": round(seconds, 2)}

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: Path, with_state: bool) -> None:
        """Rank 0 writes; every rank takes part (RNG states are gathered), then all wait."""
        from streamseg.predictor.checkpoint import save_checkpoint

        extra = {"train_state": self._train_state()} if with_state else None
        if self.info.is_main:
            save_checkpoint(path, self.model, self.cfg, self.vocabulary, extra=extra)
        barrier(self.info)

    def _train_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "format": TRAIN_STATE_FORMAT,
            "version": TRAIN_STATE_VERSION,
            "step": self.step,
            "world_size": self.info.world_size,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng_cpu": self._gather_rng(torch.get_rng_state()),
        }
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        if self.info.device.type == "cuda":
            state["rng_cuda"] = self._gather_rng(torch.cuda.get_rng_state(self.info.device))
        return state

    def _gather_rng(self, state: torch.Tensor) -> torch.Tensor:
        """(world, n) uint8: every rank's RNG state, so a resume restores each rank's stream."""
        if not self.info.distributed:
            return state[None].clone()
        local = state.to(self.info.device) if self.info.backend == "nccl" else state
        parts = [torch.empty_like(local) for _ in range(self.info.world_size)]
        dist.all_gather(parts, local)
        return torch.stack([p.cpu() for p in parts])

    def resume(self, path: str | Path) -> None:
        """Restore model, optimiser, scheduler, step and RNG from a checkpoint with training state."""
        from streamseg.predictor.checkpoint import load_checkpoint, load_weights

        data = load_checkpoint(path)
        state = data.get("train_state")
        if not isinstance(state, dict) or state.get("format") != TRAIN_STATE_FORMAT:
            raise CheckpointError(f"checkpoint {path} holds no training state (resume from step_*.pt or last.pt)")
        if state.get("version") != TRAIN_STATE_VERSION:
            raise CheckpointError(f"checkpoint {path} has training-state version {state.get('version')!r}")
        if list(data["vocabulary"]["names"]) != list(self.vocabulary.names):
            raise CheckpointError(f"checkpoint {path} was trained on another vocabulary "
                                  f"({', '.join(data['vocabulary']['names'])})")
        load_weights(self.model, data, f"checkpoint {path}")
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"checkpoint {path}: optimizer state does not fit ({exc})") from None
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        rng = state.get("rng_cpu")
        if isinstance(rng, torch.Tensor) and rng.shape[0] == self.info.world_size:
            torch.set_rng_state(rng[self.info.rank].clone())
        else:  # another world size: a fresh, still deterministic per-rank stream
            torch.manual_seed(self.tcfg.seed * 1000 + 17 + self.info.rank + self.step)
        rng_cuda = state.get("rng_cuda")
        if self.info.device.type == "cuda" and isinstance(rng_cuda, torch.Tensor) \
                and rng_cuda.shape[0] == self.info.world_size:
            torch.cuda.set_rng_state(rng_cuda[self.info.rank].clone(), self.info.device)

    def _prune_checkpoints(self) -> None:
        keep = self.tcfg.keep_checkpoints
        if not self.info.is_main or keep <= 0:
            return
        periodic = sorted(self.out.glob("step_*.pt"))
        for old in periodic[:-keep]:
            old.unlink(missing_ok=True)
