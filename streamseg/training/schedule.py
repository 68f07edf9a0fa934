"""Optimiser and learning-rate schedule of `streamseg train`."""
from __future__ import annotations

import math

import torch
from torch import nn

from streamseg.training.config import TrainConfig


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based): linear warm-up over
    ``cfg.warmup`` steps, then cosine decay to 0 at ``cfg.steps`` or a step decay at milestones."""
    if cfg.warmup > 0 and step < cfg.warmup:
        return (step + 1) / cfg.warmup
    if cfg.lr_schedule == "step":
        return cfg.lr_gamma ** sum(1 for m in cfg.lr_milestones if step >= m)
    span = max(1, cfg.steps - cfg.warmup)
    progress = min(1.0, (step - cfg.warmup) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """AdamW groups: the backbone at ``lr * backbone_lr_mult``; no weight decay on biases, norms and
    embeddings (decaying them only shrinks scales and learned queries, as Mask2Former avoids)."""
    no_decay_ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, (nn.Embedding, nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)):
            no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        backbone = name.startswith("backbone.")
        decay = p.ndim >= 2 and id(p) not in no_decay_ids
        groups.setdefault((backbone, decay), []).append(p)
    out = []
    for (backbone, decay), params in sorted(groups.items()):
        out.append({
            "params": params,
            "lr": cfg.lr * (cfg.backbone_lr_mult if backbone else 1.0),
            "weight_decay": cfg.weight_decay if decay else 0.0,
        })
    return out


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))
