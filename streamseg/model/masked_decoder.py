"""Mask2Former transformer decoder with TMT-VIS taxonomy injection (paper eq. 6-7).

Layer l:  X' = TIM(X, E_T)                                   (eq. 6; skipped with taxonomy off)
          X  = FFN(SelfAttn(MaskedCrossAttn(X', F_{l mod 3})))  (eq. 7)
The feature levels cycle low -> high resolution (strides 32, 16, 8). The attention mask of layer l
is the previous prediction's mask resized to that level: sigmoid >= 0.5 (logit >= 0) may attend,
an empty row attends everywhere (streamseg.kernels.masked_attention). The resize is Mask2Former's bilinear
interpolation (align_corners=False) of the stride-4 mask logits, computed as the mask embedding
against bilinearly resized mask features (interpolation is linear, so the two are equal), which
avoids building every full-resolution mask at inference. As in Mask2Former, the initial queries
make a prediction too (L + 1 predictions for L layers), which training supervises.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from streamseg.model.classifier import LinearClassifier, OpenVocabClassifier
from streamseg.model.layers import MLP, CrossAttentionLayer, FFNLayer, SelfAttentionLayer
from streamseg.model.position_encoding import sine_position_encoding
from streamseg.model.taxonomy import TaxonomyInjection

NUM_LEVELS = 3


@dataclass
class DecoderOutput:
    logits: torch.Tensor  # (B, Q, K+1), last layer
    masks: torch.Tensor  # (B, Q, H/4, W/4) logits, last layer
    queries: torch.Tensor  # (B, Q, C) output queries (before the prediction norm)
    aux: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # initial + every layer
    taxo_logits: torch.Tensor | None = None  # (B, Q, K+1) right after the first TIM


class MaskedDecoder(nn.Module):
    def __init__(self, dim: int, mask_dim: int, layers: int, heads: int, ffn_dim: int,
                 text_dim: int, taxonomy: bool, masked_levels: int = NUM_LEVELS,
                 dropout: float = 0.0, classifier: str = "text", mask2former: bool = False,
                 infer_layers: int = 0) -> None:
        super().__init__()
        self.num_layers = layers
        self.infer_layers = infer_layers or layers  # inference (need_aux False) stops after these
        self.masked_levels = masked_levels
        self.level_embed = nn.Parameter(torch.randn(NUM_LEVELS, dim) * 0.02)
        self.tim = (nn.ModuleList(TaxonomyInjection(dim, heads, ffn_dim, dropout)
                                  for _ in range(layers)) if taxonomy else None)
        self.cross = nn.ModuleList(CrossAttentionLayer(dim, heads, dropout) for _ in range(layers))
        self.self_attn = nn.ModuleList(SelfAttentionLayer(dim, heads, dropout) for _ in range(layers))
        self.ffn = nn.ModuleList(FFNLayer(dim, ffn_dim, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.mask_embed = MLP(dim, dim, mask_dim, 3)
        self.classifier: nn.Module = (LinearClassifier(dim, text_dim) if classifier == "linear"
                                      else OpenVocabClassifier(dim, text_dim))
        # Mask2Former adds the level embedding to the memory features (keys and values) and
        # normalises positions with eps; the streamseg layout adds it to the key positions only
        self.level_on_source = mask2former
        self.pos_eps = 1e-6 if mask2former else 0.0

    def attention_mask(self, mask_embed: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """mask_embed (B, Q, Cm), pooled mask features (B, Cm, n) -> (B, Q, n) bool, True = attend."""
        return torch.matmul(mask_embed, pooled) >= 0.0

    def forward(self, queries: torch.Tensor, query_pos: torch.Tensor, levels: list[torch.Tensor],
                mask_features: torch.Tensor, text_emb: torch.Tensor,
                taxonomy: torch.Tensor | None, need_aux: bool) -> DecoderOutput:
        """queries/query_pos (B, Q, C); levels: strides 32/16/8 maps (B, C, h, w); mask_features
        (B, Cm, H4, W4); text_emb (K, text_dim); taxonomy E_T (B, N, C) or None. need_aux:
        compute every layer's class logits and full masks (training); otherwise only what the
        attention masks and the final prediction need."""
        classes = self.classifier.class_embeddings(text_emb)
        src, pos, pooled = [], [], []
        # bilinear downsampling reads channels_last ~30x faster on CPU (same values); a no-op
        # for the onnx features, which arrive as an NHWC view already
        pool_src = mask_features.contiguous(memory_format=torch.channels_last) if self.masked_levels else None
        for i, feat in enumerate(levels):
            h, w = feat.shape[-2:]
            tokens = feat.flatten(2).transpose(1, 2)
            enc = sine_position_encoding(h, w, feat.shape[1], feat.device, feat.dtype, eps=self.pos_eps)
            if self.level_on_source:
                src.append(tokens + self.level_embed[i])
                pos.append(enc[None])
            else:
                src.append(tokens)
                pos.append((enc + self.level_embed[i])[None])
            if i < self.masked_levels:
                pooled.append(F.interpolate(pool_src, size=(h, w), mode="bilinear",
                                           align_corners=False).flatten(2))
        x = queries
        aux: list[tuple[torch.Tensor, torch.Tensor]] = []
        embed = None
        if self.masked_levels > 0 or need_aux:
            xn = self.norm(x)
            embed = self.mask_embed(xn)
            if need_aux:  # the initial queries' prediction (Mask2Former's prediction 0)
                aux.append((self.classifier(xn, classes),
                            torch.einsum("bqc,bchw->bqhw", embed, mask_features)))
        taxo_logits = None
        logits = masks = None
        run = self.num_layers if need_aux else self.infer_layers
        for i in range(run):
            level = i % NUM_LEVELS
            if self.tim is not None and taxonomy is not None:
                x = self.tim[i](x, taxonomy, query_pos)
                if i == 0:
                    taxo_logits = self.classifier(self.norm(x), classes)
            attn_mask = None
            if level < self.masked_levels:
                attn_mask = self.attention_mask(embed, pooled[level])
            x = self.cross[i](x, src[level], pos_q=query_pos, pos_k=pos[level], mask=attn_mask)
            x = self.self_attn[i](x, query_pos)
            x = self.ffn[i](x)
            last = i == run - 1
            next_masked = ((i + 1) % NUM_LEVELS) < self.masked_levels
            if need_aux or last or next_masked:
                xn = self.norm(x)
                embed = self.mask_embed(xn)
                if need_aux or last:
                    logits = self.classifier(xn, classes)
                    masks = torch.einsum("bqc,bchw->bqhw", embed, mask_features)
                    if need_aux:
                        aux.append((logits, masks))
        if logits is None or masks is None:
            raise RuntimeError("the decoder ran no layer")
        return DecoderOutput(logits=logits, masks=masks, queries=x, aux=aux,
                             taxo_logits=taxo_logits)
