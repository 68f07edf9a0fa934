"""Joint training on several datasets: draw each sample's dataset by fixed ratios, shard over ranks.

Without ratios, a large dataset would drown a small one. TMT-VIS (Table 5) samples
YouTube-VIS : UVO : OVIS at 1 : 1 : 0.75; the default ratio of a dataset follows from its family
(``dataset_family``: ovis 0.75, every other family 1), so it does not depend on the order of --data. Every rank computes the same global
sequence from (seed, epoch) and takes its own stride of it, so ranks never see the same sample in
an epoch and need no communication.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from streamseg.errors import ConfigError

PAPER_RATIOS = {"ytvis": 1.0, "uvo": 1.0, "ovis": 0.75}  # TMT-VIS Table 5, by dataset


def dataset_family(name: str) -> str | None:
    """The benchmark a dataset's name or path points to (``ovis``, ``uvo``, ``ytvis``), if any."""
    low = name.lower().replace("-", "").replace("_", "")
    if "ovis" in low:
        return "ovis"
    if "uvo" in low:
        return "uvo"
    if "ytvis" in low or "youtubevis" in low or "youtube" in low:
        return "ytvis"
    return None


def default_ratios(names: Sequence[str]) -> tuple[float, ...]:
    """Per dataset, the paper's ratio of its family (1 for a dataset of no known family)."""
    return tuple(PAPER_RATIOS.get(dataset_family(n) or "", 1.0) for n in names)


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class MultiDatasetSampler(torch.utils.data.Sampler[int]):
    """Indices into ``torch.utils.data.ConcatDataset(datasets)`` with per-dataset ratios.

    ``num_samples`` is the global epoch length (default: the total number of items); each rank
    yields ``ceil(num_samples / world_size)`` of them. Within a dataset, items are visited in a
    fresh permutation, cycled as often as its ratio requires.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        ratios: Sequence[float] | None = None,
        num_samples: int | None = None,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        if not sizes or any(s < 1 for s in sizes):
            raise ConfigError("every dataset of the sampler needs at least one item")
        ratios = tuple((1.0,) * len(sizes) if ratios is None else ratios)
        if len(ratios) != len(sizes) or any(r < 0 for r in ratios) or sum(ratios) <= 0:
            raise ConfigError(f"dataset ratios must be {len(sizes)} non-negative numbers, not all zero")
        if rank is None or world_size is None:
            rank, world_size = _dist_rank_world()
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside world size {world_size}")
        self.sizes = list(sizes)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        self.probs = np.asarray(ratios, dtype=np.float64) / float(sum(ratios))
        self.num_samples = int(num_samples if num_samples is not None else sum(sizes))
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.num_samples // self.world_size)

    def global_indices(self) -> np.ndarray:
        """The epoch's sequence over all ranks, padded (by wrapping) to a multiple of world_size."""
        rng = np.random.default_rng([self.seed, self.epoch])
        total = len(self) * self.world_size
        choice = rng.choice(len(self.sizes), size=total, p=self.probs)
        out = np.empty(total, dtype=np.int64)
        for d, size in enumerate(self.sizes):
            where = np.flatnonzero(choice == d)
            reps = -(-len(where) // size) if len(where) else 0
            order = np.concatenate([rng.permutation(size) for _ in range(reps)]) if reps else np.empty(0, np.int64)
            out[where] = self.offsets[d] + order[: len(where)]
        return out

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` global indices drawn i.i.d. by the ratios (for loops that draw per step from their own rng)."""
        datasets = rng.choice(len(self.sizes), size=n, p=self.probs)
        return np.array([self.offsets[d] + rng.integers(0, self.sizes[d]) for d in datasets], dtype=np.int64)

    def dataset_of(self, index: int) -> int:
        """Which dataset a global index belongs to."""
        return int(np.searchsorted(self.offsets, index, side="right") - 1)

    def __iter__(self) -> Iterator[int]:
        return iter(self.global_indices()[self.rank :: self.world_size].tolist())
