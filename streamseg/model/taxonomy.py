"""TMT-VIS taxonomy modules (paper sec. 3.2-3.3): TCM compiles E_T, TIM injects it into queries.

TCM, eq. 2-5:  E1 = Adapter(E);  E2 = FFN(CrossAttn(E1, F));  E3 = FFN(CrossAttn(E2, F));
               S = Sigmoid(Linear(E3) . E1)  (row-wise dot: one score per class);
               E_T = the rows of E3 with the N_T highest scores.
TIM, eq. 6:    X'_{l-1} = FFN(CrossAttn(X_{l-1}, E_T)).
E is the vocabulary's text embeddings (K, d); F the pixel-decoder features of the clip window's
frames, flattened to tokens (B, T*h*w, C).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from streamseg.model.layers import CrossAttentionLayer, FFNLayer


@dataclass
class CompiledTaxonomy:
    embeddings: torch.Tensor  # E_T (B, min(N_T, K), C)
    scores: torch.Tensor  # S (B, K)
    indices: torch.Tensor  # (B, min(N_T, K)) class indices of the kept rows, by decreasing score


class Adapter(nn.Module):
    """Spatio-temporal adapter (eq. 2): FC down to a bottleneck, activation, FC up to the feature
    dimension, aligning text embeddings with the video features."""

    def __init__(self, text_dim: int, bottleneck: int, dim: int) -> None:
        super().__init__()
        self.down = nn.Linear(text_dim, bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))


class TaxonomyCompilation(nn.Module):
    """TCM: which N_T classes of the vocabulary does this clip window most likely contain?"""

    def __init__(self, text_dim: int, dim: int, adapter_dim: int, heads: int, ffn_dim: int,
                 size: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.size = size
        self.adapter = Adapter(text_dim, adapter_dim, dim)
        self.cross = nn.ModuleList(CrossAttentionLayer(dim, heads, dropout) for _ in range(2))
        self.ffn = nn.ModuleList(FFNLayer(dim, ffn_dim, dropout) for _ in range(2))
        self.score_proj = nn.Linear(dim, dim)

    def forward(self, text_emb: torch.Tensor, features: torch.Tensor) -> CompiledTaxonomy:
        """text_emb (K, text_dim), features (B, N, C) -> E_T (B, min(N_T, K), C), S (B, K)."""
        e1 = self.adapter(text_emb)[None].expand(features.shape[0], -1, -1)  # eq. 2
        e2 = self.ffn[0](self.cross[0](e1, features))  # eq. 3
        e3 = self.ffn[1](self.cross[1](e2, features))  # eq. 4
        scores = torch.sigmoid((self.score_proj(e3) * e1).sum(-1))  # eq. 5
        keep = min(self.size, scores.shape[1])
        indices = scores.topk(keep, dim=1).indices
        embeddings = torch.gather(e3, 1, indices[..., None].expand(-1, -1, e3.shape[-1]))
        return CompiledTaxonomy(embeddings=embeddings, scores=scores, indices=indices)


class TaxonomyInjection(nn.Module):
    """TIM (eq. 6): queries cross-attend to E_T, then an FFN; run before each decoder layer."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.cross = CrossAttentionLayer(dim, heads, dropout)
        self.ffn = FFNLayer(dim, ffn_dim, dropout)

    def forward(self, queries: torch.Tensor, taxonomy: torch.Tensor,
                query_pos: torch.Tensor | None = None) -> torch.Tensor:
        return self.ffn(self.cross(queries, taxonomy, pos_q=query_pos))
