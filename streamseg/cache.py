"""Where streamseg keeps what it can rebuild: ``$STREAMSEG_CACHE``, default ``~/.cache/streamseg``
(downloaded models, text embeddings of vocabularies, exported ONNX graphs)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("STREAMSEG_CACHE") or Path.home() / ".cache" / "streamseg")
