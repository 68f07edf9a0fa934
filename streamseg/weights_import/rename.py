"""The renaming machinery both importers share (transformers folders, detectron2 files): regex
rules from a source key to an OnlineVIS key, the split of a fused attention input projection, and
the one refusal of keys no rule knows."""
from __future__ import annotations

import re
from typing import Callable, Sequence

import torch

from streamseg.errors import CheckpointError

# (regex on the key, target template | function of the match | None = handled elsewhere)
Rule = tuple[str, "str | Callable[[re.Match[str]], str] | None"]


def apply_rules(rules: Sequence[Rule], rest: str) -> str | None:
    """The target of the first rule that matches ``rest`` in full and has a target."""
    for pattern, target in rules:
        m = re.fullmatch(pattern, rest)
        if m and target is not None:
            return target(m) if callable(target) else m.expand(target)
    return None


def split_in_proj(value: torch.Tensor, prefix: str, suffix: str, out: dict[str, torch.Tensor]) -> None:
    """nn.MultiheadAttention's fused in_proj (3C rows) -> our ``{prefix}{q,k,v}_proj.{suffix}``."""
    for name, part in zip("qkv", value.chunk(3, dim=0)):
        out[f"{prefix}{name}_proj.{suffix}"] = part.clone()


def refuse_unknown(unknown: list[str], what: str) -> None:
    """One line naming the first unrecognised keys, when there are any."""
    if unknown:
        shown = ", ".join(unknown[:3]) + (", ..." if len(unknown) > 3 else "")
        raise CheckpointError(f"not a {what} checkpoint: {len(unknown)} unrecognised keys ({shown})")
