"""Shared helpers for the segmenter, vocabulary and tracking tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from streamseg.config import Config, load_config
from streamseg.data.synthetic_scene import SYNTHETIC_CLASSES, SceneConfig, SyntheticScene
from streamseg.interface import Frame, Vocabulary
from streamseg.vocab.encoders import MINILM_ID

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "tiny-test.yaml"

# An untrained model scores every slot around 1/(K+1) x mask quality: thresholds low enough that
# its slots become tracks, so the lifecycle, masks and boxes have something to act on.
UNTRAINED_TRACKER = ["tracker.birth_threshold=0.02", "tracker.keep_threshold=0.01",
                     "tracker.duplicate_iou=1.0", "tracker.max_missed=2", "model.memory_length=4"]


def tiny_config(*overrides: str) -> Config:
    return load_config(TINY_CONFIG, [*UNTRAINED_TRACKER, *overrides])


def random_vocabulary(names=SYNTHETIC_CLASSES, dim: int = 384, encoder_id: str = MINILM_ID,
                      seed: int = 0) -> Vocabulary:
    """Unit-norm random rows: an untrained model has no use for meaningful embeddings."""
    emb = np.random.default_rng(seed).standard_normal((len(names), dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return Vocabulary(names=list(names), embeddings=emb, encoder_id=encoder_id)


def scene_frames(n: int, width: int = 150, height: int = 100, seed: int = 3) -> list[Frame]:
    scene = SyntheticScene(SceneConfig(seed=seed, width=width, height=height, instances=3))
    frames = []
    for i in range(n):
        image, truth = scene.render(i)
        frames.append(Frame(image=image, index=i, pts=i / 25, t_capture_ns=0, truth=truth))
    return frames


def box_of(mask: np.ndarray) -> tuple[float, float, float, float]:
    """Reference box [x0, y0, x1, y1] with exclusive right/bottom edges, computed with numpy."""
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120):
    """Run ``python -m streamseg ARGS`` in a real subprocess (the repo on PYTHONPATH)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("HF_HUB_OFFLINE", "1")
    return subprocess.run([sys.executable, "-m", "streamseg", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def write_tiny_clip(folder: Path, with_weights: bool = True) -> Path:
    """A tiny open_clip model (width 32, 1 layer, context 16) as an open_clip 'local-dir' folder:
    its config, and (optionally) weights drawn with a fixed seed, loaded back by open_clip's own loader."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"model_cfg": {"embed_dim": 32,
                         "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16,
                                        "head_width": 16},
                         "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                                      "layers": 1}}}
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    if with_weights:
        import open_clip
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(123)
            model = open_clip.create_model(f"local-dir:{folder}")
        torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return folder
