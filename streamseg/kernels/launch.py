"""Launch parameters of the Triton kernels: block sizes, autotune grid, key splitting.

Kept apart from the kernels so that the block-size policy (autotune on a GPU, fixed large blocks in
Triton's interpreter, explicit overrides in tests) is readable in one place.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

SUPPORTED_HEAD_DIMS = (16, 32, 64, 128, 256)
# Every key split is a multiple of this many keys, so that it is a whole number of key blocks for
# every autotune config (BLOCK_N <= 256) and split boundaries never fall inside a block.
SPLIT_UNIT = 256
# A split reads at least this many keys: its partial result (Nq x d fp32, written and read back) then
# costs under ~10 % of the K/V bytes it saves from being idle SMs.
MIN_SPLIT_KEYS = 2048


@dataclass(frozen=True)
class BlockSizes:
    """Explicit launch parameters; None everywhere means "autotune" on a GPU.

    block_m: query rows per program; block_n: keys per program step (both powers of two >= 16).
    splits: how many programs share one row block's keys (flash-decoding style split of Nk);
    None = chosen from the SM count on a GPU, 1 in the interpreter.
    """

    block_m: int | None = None
    block_n: int | None = None
    splits: int | None = None
    num_warps: int = 4
    num_stages: int = 2

    def __post_init__(self) -> None:
        if self.block_m is not None and (self.block_m < 16 or self.block_m & (self.block_m - 1)):
            raise ValueError(f"block_m must be a power of two >= 16, got {self.block_m}")
        if self.block_n is not None and (self.block_n < 32 or self.block_n & (self.block_n - 1)):
            raise ValueError(f"block_n must be a power of two >= 32 (one mask word), got {self.block_n}")
        if self.splits is not None and self.splits < 1:
            raise ValueError(f"splits must be >= 1, got {self.splits}")

    @property
    def explicit(self) -> bool:
        return self.block_m is not None and self.block_n is not None


# The interpreter costs ~50 ms per loop iteration whatever the block size, so it gets big blocks:
# typical test shapes then take one or two key steps per program.
INTERPRETER_BLOCKS = BlockSizes(block_m=128, block_n=256, splits=1)


def interpreting() -> bool:
    """True when Triton kernels run in the CPU interpreter (TRITON_INTERPRET=1 at definition time)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


# (BLOCK_M, BLOCK_N, num_warps, num_stages) per (head dim, dtype) class. Tiles shrink as d and the
# element size grow so that shared memory fits sm_80's 164 KB; every entry (or a larger one) was
# compiled for sm_80/sm_90 with triton.compile (README.md, "Block sizes").
TUNE_GRID = {
    "half-d64": [(64, 64, 4, 3), (64, 128, 4, 3), (128, 64, 4, 3), (128, 128, 8, 3), (64, 128, 4, 4)],
    "half-d128": [(64, 64, 4, 3), (64, 64, 4, 2), (32, 64, 4, 2)],
    "half-d256": [(32, 32, 4, 2), (64, 32, 4, 2), (64, 64, 4, 3)],
    "fp32-d64": [(32, 32, 4, 2), (64, 32, 4, 2), (32, 64, 4, 2), (64, 64, 4, 2)],
    "fp32-d128": [(32, 32, 4, 2), (16, 32, 4, 1)],
    "fp32-d256": [(16, 32, 4, 1), (32, 32, 4, 1)],
}


def tune_class(head_dim: int, is_fp32: bool) -> str:
    """Key of TUNE_GRID for a head dim (16..256) and input dtype."""
    size = "d64" if head_dim <= 64 else f"d{head_dim}"
    return f"{'fp32' if is_fp32 else 'half'}-{size}"


def autotune_configs() -> list:
    """The union of TUNE_GRID; ``prune_configs`` keeps the ones for the call's head dim and dtype."""
    import triton

    grid = sorted({c for configs in TUNE_GRID.values() for c in configs})
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s) for m, n, w, s in grid]


def prune_configs(configs: list, named_args: dict, **kwargs) -> list:
    """``early_config_prune`` hook of triton.autotune."""
    import torch

    wanted = set(TUNE_GRID[tune_class(kwargs["HEAD_DIM"], named_args["Q"].dtype == torch.float32)])
    kept = [c for c in configs
            if (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages) in wanted]
    return kept or configs[:1]


def choose_splits(row_programs: int, nk: int, unit: int, device_index: int | None) -> int:
    """Split Nk so that the grid holds about two programs per SM.

    The decoder has only Nq = 100-200 queries per head, so without splitting a 1-frame launch has
    ~16 programs on a 132-SM GPU; each split computes a partial softmax that is merged afterwards.
    """
    if device_index is None:
        return 1
    import torch

    sms = torch.cuda.get_device_properties(device_index).multi_processor_count
    wanted = max(1, -(-2 * sms // max(row_programs, 1)))
    return max(1, min(wanted, -(-nk // max(unit, MIN_SPLIT_KEYS))))


def split_chunk(nk: int, splits: int, unit: int) -> tuple[int, int]:
    """Keys per split rounded up to ``unit``, and the resulting number of non-empty splits."""
    chunk = -(-nk // splits)
    chunk = -(-chunk // unit) * unit
    return chunk, -(-nk // chunk)


def resolve_blocks(blocks: BlockSizes | None) -> BlockSizes:
    """Fixed large blocks in the interpreter, autotuning on a GPU, unless the caller chose."""
    if blocks is not None:
        return blocks
    return INTERPRETER_BLOCKS if interpreting() else BlockSizes()


def key_splits(blocks: BlockSizes, nq: int, nk: int, batch_heads: int, device) -> tuple[int, int]:
    """(keys per split, number of splits) for kernels whose programs walk the keys."""
    unit = SPLIT_UNIT if blocks.block_n is None else max(SPLIT_UNIT, blocks.block_n)
    splits = blocks.splits
    if splits is None:
        row_blocks = -(-nq // (blocks.block_m or 64)) * batch_heads
        splits = choose_splits(row_blocks, nk, unit, device.index if device.type == "cuda" else None)
    return split_chunk(nk, splits, unit)
