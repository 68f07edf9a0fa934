"""Writing torch files (checkpoints, vocabularies) so that a reader, or a crash, never sees half of one."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def save_atomic(data: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` beside ``path`` (same folder, so the rename is atomic), then rename over it."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)
