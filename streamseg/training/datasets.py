"""Training clips from YouTube-VIS-format datasets (YouTube-VIS 2019/2021, OVIS, UVO, synthetic).

A clip is T frames of one video at a random stride, with every annotated instance's masks over
those frames. Sampling is deterministic in (seed, epoch, index), so DataLoader workers and DDP
ranks need no shared random state and a run can be replayed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from streamseg.data.frames import read_rgb
from streamseg.data.ytvis import DatasetError, YtvisDataset, decode_rle, image_root_for, load_ytvis


@dataclass
class Clip:
    """T frames of one video and its instances. Instance i is in frame t iff ``present[i, t]``."""

    images: torch.Tensor  # [T, 3, H, W] uint8 RGB
    masks: torch.Tensor  # [N, T, H, W] bool (all False where the instance is absent)
    present: torch.Tensor  # [N, T] bool
    instance_ids: torch.Tensor  # [N] int64: annotation ids (stable over the video)
    class_ids: torch.Tensor  # [N] int64: index into category_names (the dataset's own vocabulary)
    unified_ids: torch.Tensor  # [N] int64: index into the unified taxonomy (= class_ids without one)
    category_names: list[str]  # the dataset's vocabulary
    dataset: str = ""
    video_id: int = 0
    frame_indices: list[int] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.images.shape[0])

    def class_names(self) -> list[str]:
        return [self.category_names[int(k)] for k in self.class_ids]

    def frame_instances(self, t: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Masks [n, H, W], instance ids [n] and class names of the instances present in frame t."""
        keep = self.present[:, t]
        names = [n for n, k in zip(self.class_names(), keep.tolist()) if k]
        return self.masks[keep, t], self.instance_ids[keep], names

    def keep_instances(self, keep: torch.Tensor) -> "Clip":
        """The same clip with only the instances where ``keep`` [N] is True."""
        return Clip(self.images, self.masks[keep], self.present[keep], self.instance_ids[keep], self.class_ids[keep],
                    self.unified_ids[keep], self.category_names, self.dataset, self.video_id, self.frame_indices)


def sample_frame_indices(length: int, num_frames: int, max_stride: int, rng: np.random.Generator) -> list[int]:
    """T indices in [0, length) at one random stride in [1, max_stride] that fits the video.

    A video shorter than T repeats its last frame (only happens for very short videos)."""
    if length <= 0:
        raise DatasetError("cannot sample a clip from a video without frames")
    if num_frames == 1:
        return [int(rng.integers(0, length))]
    fit = (length - 1) // (num_frames - 1)
    stride = int(rng.integers(1, max(1, min(max_stride, fit)) + 1))
    span = (num_frames - 1) * stride
    start = int(rng.integers(0, max(length - span, 1)))
    return [min(start + i * stride, length - 1) for i in range(num_frames)]


class YtvisClipDataset(torch.utils.data.Dataset):
    """Clips of a YouTube-VIS-format dataset: item i is a clip of video i (a new one each epoch)."""

    def __init__(
        self,
        annotations: str | Path | YtvisDataset,
        image_root: str | Path | None = None,
        num_frames: int = 3,
        max_stride: int = 3,
        seed: int = 0,
        transform: Callable[[Clip, np.random.Generator], Clip] | None = None,
        unified_map: dict[int, int] | None = None,  # category id -> unified id (training/taxonomy.py)
        name: str | None = None,
    ):
        self.data = annotations if isinstance(annotations, YtvisDataset) else load_ytvis(annotations)
        if image_root is None:
            if self.data.path is None:
                raise DatasetError("image_root is needed for a dataset that was not read from a file")
            image_root = image_root_for(self.data.path)
        self.image_root = Path(image_root)
        if num_frames < 1 or max_stride < 1:
            raise DatasetError("num_frames and max_stride must be >= 1")
        self.num_frames = num_frames
        self.max_stride = max_stride
        self.seed = seed
        self.epoch = 0
        self.transform = transform
        self.name = name or (Path(self.data.path).stem if self.data.path else "dataset")
        cats = self.data.categories
        self.category_names = [c.name for c in cats]
        self._class_index = {c.id: k for k, c in enumerate(cats)}
        if unified_map is not None and set(unified_map) != set(self._class_index):
            raise DatasetError(f"{self.name}: the unified map must cover exactly the dataset's category ids")
        self._unified = unified_map or self._class_index
        self._anns = {v.id: [a for a in self.data.annotations_of(v.id) if not a.iscrowd] for v in self.data.videos}

    def __len__(self) -> int:
        return len(self.data.videos)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> Clip:
        return self.sample_clip(index, np.random.default_rng([self.seed, self.epoch, index]))

    def sample_clip(self, index: int, rng: np.random.Generator, num_frames: int | None = None) -> Clip:
        """A clip of video ``index`` drawn with ``rng`` (for loops that own their random stream)."""
        video = self.data.videos[index]
        frames = sample_frame_indices(video.length, num_frames or self.num_frames, self.max_stride, rng)
        images = torch.stack(
            [torch.from_numpy(read_rgb(self.image_root / video.file_names[t])).permute(2, 0, 1) for t in frames]
        )
        if images.shape[-2:] != (video.height, video.width):
            raise DatasetError(f"{self.name}: frames of video {video.id} are not {video.width}x{video.height}")
        anns = [a for a in self._anns[video.id] if any(a.segmentations[t] is not None for t in frames)]
        T, H, W = len(frames), video.height, video.width
        masks = torch.zeros((len(anns), T, H, W), dtype=torch.bool)
        present = torch.zeros((len(anns), T), dtype=torch.bool)
        for i, a in enumerate(anns):
            for j, t in enumerate(frames):
                rle = a.segmentations[t]
                if rle is not None:
                    masks[i, j] = torch.from_numpy(decode_rle(rle))
                    present[i, j] = True
        clip = Clip(
            images=images,
            masks=masks,
            present=present,
            instance_ids=torch.tensor([a.id for a in anns], dtype=torch.int64),
            class_ids=torch.tensor([self._class_index[a.category_id] for a in anns], dtype=torch.int64),
            unified_ids=torch.tensor([self._unified[a.category_id] for a in anns], dtype=torch.int64),
            category_names=self.category_names,
            dataset=self.name,
            video_id=video.id,
            frame_indices=frames,
        )
        if self.transform is not None:
            clip = self.transform(clip, rng)
        return clip


def collate_clips(batch: list[Clip]) -> list[Clip]:
    """Clips differ in instance count (and size without a crop): a batch is kept as a list."""
    return list(batch)
