"""Training clips rendered on demand from the synthetic scene (``--data synth://?seed=6``).

A model trained on 160 stored videos learnt those videos rather than the scene; the scene renders
any frame of any video in closed form, so a recipe can draw every clip from a video it has never
seen, with no dataset on disk. Video ``i`` of ``synth://?seed=S`` is video ``train_{i}`` of
``streamseg data synth --seed S`` (same scene, frames, JPEG round trip and annotations), so a
stored set and the endless one are the same distribution and can be checked against each other.
"""
from __future__ import annotations

from typing import Callable
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import torch

from streamseg.data.frames import jpeg_roundtrip
from streamseg.data.synth import SynthSpec, video_rng, video_scene
from streamseg.data.synthetic_scene import SYNTHETIC_CLASSES
from streamseg.data.ytvis import Category, YtvisDataset
from streamseg.errors import ConfigError
from streamseg.training.datasets import Clip, sample_frame_indices

SCHEME = "synth://"
DEFAULT_VIDEOS = 1_000_000  # enough that no run of this machine's budget sees a video twice
_INT_KEYS = ("seed", "videos", "frames", "width", "height", "instances", "frame_step", "quality")


def is_synthetic_spec(data: str) -> bool:
    return str(data).startswith(SCHEME)


def parse_synthetic_spec(data: str) -> SynthSpec:
    """``synth://?seed=6&videos=N&frames=24&width=320&height=192&instances=5&frame_step=3&quality=90``
    (every key optional; the defaults are those of ``streamseg data synth``)."""
    parts = urlsplit(str(data))
    if parts.netloc or parts.path not in ("", "/"):
        raise ConfigError(f"{data}: expected synth://?key=value&... (keys: {', '.join(_INT_KEYS)})")
    values: dict[str, int] = {"videos": DEFAULT_VIDEOS}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _INT_KEYS:
            raise ConfigError(f"{data}: unknown key {key!r} (keys: {', '.join(_INT_KEYS)})")
        try:
            values[key] = int(value)
        except ValueError:
            raise ConfigError(f"{data}: {key} must be an integer, not {value!r}") from None
    spec = SynthSpec(out="", val_videos=0, **values)
    spec.validate()
    if not 1 <= spec.quality <= 100:
        raise ConfigError(f"{data}: quality must be in [1, 100]")
    return spec


class SyntheticClipDataset:
    """Clips of the synthetic benchmark's training videos, rendered when drawn."""

    def __init__(self, spec: SynthSpec, num_frames: int = 3, max_stride: int = 3,
                 transform: Callable[[Clip, np.random.Generator], Clip] | None = None,
                 unified_map: dict[int, int] | None = None, name: str = "synth") -> None:
        if num_frames < 1 or max_stride < 1:
            raise ConfigError("num_frames and max_stride must be >= 1")
        self.spec = spec
        self.num_frames = num_frames
        self.max_stride = max_stride
        self.transform = transform
        self.name = name
        self.category_names = list(SYNTHETIC_CLASSES)
        self._unified = unified_map or {k + 1: k for k in range(len(SYNTHETIC_CLASSES))}

    @staticmethod
    def categories() -> YtvisDataset:
        """The annotation header of the stored twin (no videos): its taxonomy."""
        return YtvisDataset([], [Category(k + 1, n) for k, n in enumerate(SYNTHETIC_CLASSES)])

    def __len__(self) -> int:
        return self.spec.videos

    def sample_clip(self, index: int, rng: np.random.Generator, num_frames: int | None = None) -> Clip:
        if not 0 <= index < len(self):
            raise IndexError(f"video {index} of {len(self)}")
        spec = self.spec
        scene, _, start = video_scene(spec, video_rng(spec.seed, 1, index))
        frames = sample_frame_indices(spec.frames, num_frames or self.num_frames, self.max_stride, rng)
        images, per_frame = [], []
        for t in frames:
            image, truth = scene.render(start + t * spec.frame_step)
            images.append(torch.from_numpy(jpeg_roundtrip(image, spec.quality)).permute(2, 0, 1))
            per_frame.append({i.instance_id: i for i in truth if i.mask.any()})
        ids = sorted(set().union(*per_frame))
        T, H, W = len(frames), spec.height, spec.width
        masks = torch.zeros((len(ids), T, H, W), dtype=torch.bool)
        present = torch.zeros((len(ids), T), dtype=torch.bool)
        labels: dict[int, str] = {}
        for j, seen in enumerate(per_frame):
            for i, iid in enumerate(ids):
                if iid in seen:
                    masks[i, j] = torch.from_numpy(seen[iid].mask.astype(bool))
                    present[i, j] = True
                    labels[iid] = seen[iid].label
        class_ids = [SYNTHETIC_CLASSES.index(labels[i]) for i in ids]
        clip = Clip(
            images=torch.stack(images),
            masks=masks,
            present=present,
            instance_ids=torch.tensor(ids, dtype=torch.int64),
            class_ids=torch.tensor(class_ids, dtype=torch.int64),
            unified_ids=torch.tensor([self._unified[k + 1] for k in class_ids], dtype=torch.int64),
            category_names=self.category_names,
            dataset=self.name,
            video_id=index + 1,
            frame_indices=frames,
        )
        return self.transform(clip, rng) if self.transform is not None else clip
