"""Per-slot prototype memory (GenVIS-style), read by attention before decoding.

Each query slot keeps its last M output queries ("prototypes") in a fixed (B, Q, M, C) tensor,
newest at index M-1, plus a valid count (B, Q). Pushing shifts left (FIFO), so the memory never
grows with the stream's length.
"""
from __future__ import annotations

import torch
from torch import nn

from streamseg.model.layers import CrossAttentionLayer


def push_memory(memory: torch.Tensor, length: torch.Tensor,
                prototypes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Append prototypes (B, Q, C) as the newest entry; the oldest falls out once M are held."""
    memory = torch.cat([memory[:, :, 1:], prototypes[:, :, None]], dim=2)
    length = (length + 1).clamp(max=memory.shape[2])
    return memory, length


class MemoryReader(nn.Module):
    """A slot's query attends to its own valid prototypes (age-embedded keys); slots with an
    empty memory pass through unchanged."""

    def __init__(self, dim: int, heads: int, length: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.length = length
        self.age_embed = nn.Parameter(torch.randn(length, dim) * 0.02)  # index M-1 = newest
        self.cross = CrossAttentionLayer(dim, heads, dropout)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor,
                length: torch.Tensor) -> torch.Tensor:
        """queries (B, Q, C), memory (B, Q, M, C), length (B, Q) -> queries (B, Q, C)."""
        b, q, m, c = memory.shape
        has = length > 0
        if not bool(has.any()):
            return queries
        slots = torch.arange(m, device=memory.device)
        valid = slots[None, None, :] >= (m - length)[..., None]  # (B, Q, M)
        valid = valid | ~has[..., None]  # empty slots: any keys (result discarded below)
        out = self.cross(queries.reshape(b * q, 1, c), memory.reshape(b * q, m, c),
                         pos_k=self.age_embed[None], key_padding=valid.reshape(b * q, m))
        return torch.where(has[..., None], out.view(b, q, c), queries)
