"""Open-vocabulary classification: queries scored against the vocabulary's text embeddings.

A new vocabulary needs no retraining: the class weights are the projected text embeddings, plus
one learned "no object" embedding appended as the last class (index K). Cosine similarity times a
learned temperature (CLIP's logit scale, clamped at 100 like CLIP).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class OpenVocabClassifier(nn.Module):
    def __init__(self, dim: int, text_dim: int) -> None:
        super().__init__()
        self.query_proj = nn.Linear(dim, dim)
        self.text_proj = nn.Linear(text_dim, dim)
        self.no_object = nn.Parameter(torch.randn(dim) * 0.02)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / 0.07)))

    def class_embeddings(self, text_emb: torch.Tensor) -> torch.Tensor:
        """text_emb (K, text_dim) -> (K+1, dim) unit rows; row K is no-object."""
        classes = torch.cat([self.text_proj(text_emb), self.no_object[None]], dim=0)
        return F.normalize(classes, dim=-1)

    def forward(self, queries: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """queries (B, Q, dim), classes from class_embeddings -> logits (B, Q, K+1)."""
        q = F.normalize(self.query_proj(queries), dim=-1)
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()
        return scale * torch.matmul(q, classes.t())


class LinearClassifier(nn.Module):
    """Mask2Former's closed-set head: ``nn.Linear(dim, K + 1)``, the last class being no-object.

    The "vocabulary" of such a model is one-hot rows over its K classes (encoder "closed-set"), so
    a subset of the classes is a subset of those rows: logits of the chosen classes, plus no-object.
    With all K rows in order the product with the identity is exact, i.e. the plain linear head."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, num_classes + 1)

    def class_embeddings(self, text_emb: torch.Tensor) -> torch.Tensor:
        return text_emb  # (K', K) one-hot selection

    def forward(self, queries: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        logits = self.fc(queries)
        k = logits.shape[-1] - 1
        if classes.shape[0] == k and bool((classes == torch.eye(k, device=classes.device,
                                                                dtype=classes.dtype)).all()):
            return logits
        return torch.cat([torch.matmul(logits[..., :k], classes.t()), logits[..., k:]], dim=-1)
