"""Post-norm transformer sub-layers shared by the decoder, TCM, TIM and the memory reader.

Post-norm (``x = norm(x + f(x))``) as in Mask2Former's decoder, so each equation of the paper maps
to one residual block. Multi-head attention is written out (not nn.MultiheadAttention) so a boolean
mask can be routed to ``streamseg.kernels.masked_attention``, which carries the empty-row rule and has a
Triton implementation on CUDA.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from streamseg.kernels import masked_attention


class MultiHeadAttention(nn.Module):
    """Multi-head attention; with ``mask`` (B, Nq, Nk) bool (True = may attend) it calls
    ``streamseg.kernels.masked_attention`` (a row with no True attends everywhere)."""

    def __init__(self, dim: int, heads: int, kdim: int | None = None) -> None:
        super().__init__()
        kdim = kdim or dim
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(kdim, dim)
        self.v_proj = nn.Linear(kdim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.view(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None = None,
                key_padding: torch.Tensor | None = None) -> torch.Tensor:
        """query (B,Nq,C), key/value (B,Nk,C'); key_padding (B,Nk) bool True = valid key."""
        q = self._split(self.q_proj(query))
        k = self._split(self.k_proj(key))
        v = self._split(self.v_proj(value))
        if mask is not None:
            out = masked_attention(q, k, v, mask)
        elif key_padding is not None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_padding[:, None, None, :])
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        b, h, n, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * d))


class CrossAttentionLayer(nn.Module):
    """x = norm(x + Attn(x + pos_q, mem + pos_k, mem))."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(dim, heads)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, pos_q: torch.Tensor | None = None,
                pos_k: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                key_padding: torch.Tensor | None = None) -> torch.Tensor:
        q = x if pos_q is None else x + pos_q
        k = memory if pos_k is None else memory + pos_k
        out = self.attn(q, k, memory, mask=mask, key_padding=key_padding)
        return self.norm(x + self.dropout(out))


class SelfAttentionLayer(nn.Module):
    """x = norm(x + Attn(x + pos, x + pos, x))."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(dim, heads)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        qk = x if pos is None else x + pos
        return self.norm(x + self.dropout(self.attn(qk, qk, x)))


class FFNLayer(nn.Module):
    """x = norm(x + W2 relu(W1 x))."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout(self.linear2(F.relu(self.linear1(x)))))


class MLP(nn.Module):
    """A small perceptron (Linear-ReLU-...-Linear), the mask-embedding head."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x
