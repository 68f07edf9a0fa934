"""The masked decoder's inference pass as an ONNX Runtime graph, for the ``onnx_decoder`` CPU
speed-up.

Per frame the decoder is ~1,500 small PyTorch ops on 20-odd queries (six layers of TIM, masked
cross-attention, self-attention and FFN, and the mask predictions the attention masks need), so on
a CPU its eager time is mostly dispatch; one graph runs it in ~60 % of the time (``streamseg bench
model --speedups onnx,onnx+onnx_decoder``). The decoder itself is stateless: the query memory, its
read and push, TCM's window and the tracker stay in PyTorch around it, so the stream state is
unchanged. Dynamic: batch, number of queries (targets join them), vocabulary size and every
feature size. Calls the graph does not cover fall back to the eager decoder: training (the
auxiliary predictions, gradients), no taxonomy (an empty vocabulary, or a model without TCM/TIM),
tensors off the CPU.
"""
from __future__ import annotations

import torch
from torch import nn

from streamseg.model.masked_decoder import DecoderOutput, MaskedDecoder
from streamseg.predictor.onnx_graphs import cached_graph, session

_INPUTS = ("queries", "query_pos", "s32", "s16", "s8", "mask_features_nhwc", "text_emb", "taxonomy")
_OUTPUTS = ("logits", "masks", "out_queries", "taxo_logits")
_GRAPH_FORMAT = "masked-decoder-v1 (inference, taxonomy on, mask features NHWC)"


class _Inference(nn.Module):
    """MaskedDecoder.forward(need_aux=False) with plain tensor inputs and outputs, for the exporter."""

    def __init__(self, decoder: MaskedDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, queries, query_pos, s32, s16, s8, mask_features_nhwc, text_emb, taxonomy):
        out = self.decoder(queries, query_pos, [s32, s16, s8], mask_features_nhwc.permute(0, 3, 1, 2),
                           text_emb, taxonomy, need_aux=False)
        return out.logits, out.masks, out.queries, out.taxo_logits


class OrtDecoder(nn.Module):
    """Stands in for ``model.decoder``: the same call and output. ``eager`` (the decoder it was
    exported from, shared weights) serves what the graph does not cover, and its ``norm`` the
    tracker's query embeddings."""

    def __init__(self, eager: MaskedDecoder, dims: tuple[int, int, int]) -> None:
        super().__init__()
        self.eager = eager
        self.session = session(_graph(eager, dims))
        # (with fewer inference layers a level may go unused, and the exporter drops its input)
        self.inputs = {i.name for i in self.session.get_inputs()}

    @property
    def norm(self) -> nn.LayerNorm:
        return self.eager.norm  # (a property: registered once, under eager)

    def forward(self, queries: torch.Tensor, query_pos: torch.Tensor, levels: list[torch.Tensor],
                mask_features: torch.Tensor, text_emb: torch.Tensor, taxonomy: torch.Tensor | None,
                need_aux: bool) -> DecoderOutput:
        if (need_aux or taxonomy is None or self.eager.tim is None or text_emb.shape[0] == 0
                or torch.is_grad_enabled() or queries.device.type != "cpu"):
            return self.eager(queries, query_pos, levels, mask_features, text_emb, taxonomy, need_aux)
        # (a channels_last tensor, as the onnx features give, is already NHWC in memory: no copy)
        nhwc = mask_features.permute(0, 2, 3, 1)
        feed = {name: t.detach().float().contiguous().numpy() for name, t in
                zip(_INPUTS, (queries, query_pos, *levels, nhwc, text_emb, taxonomy)) if name in self.inputs}
        logits, masks, out_queries, taxo = (torch.from_numpy(o) for o in self.session.run(list(_OUTPUTS), feed))
        return DecoderOutput(logits=logits, masks=masks, queries=out_queries, taxo_logits=taxo)


def _graph(decoder: MaskedDecoder, dims: tuple[int, int, int]) -> bytes:
    c, cm, text_dim = dims  # hidden, mask features, text embeddings
    # A probe unlike any real size in every dynamic axis, so nothing is traced as a constant.
    b, n, k, t = 2, 7, 3, 5
    sizes = ((3, 5), (6, 10), (12, 20))
    args = (torch.randn(b, n, c), torch.randn(b, n, c), *[torch.randn(b, c, h, w) for h, w in sizes],
            torch.randn(b, 48, 80, cm), torch.randn(k, text_dim), torch.randn(b, t, c))
    axes = {"queries": {0: "b", 1: "n"}, "query_pos": {0: "b", 1: "n"},
            "s32": {0: "b", 2: "h32", 3: "w32"}, "s16": {0: "b", 2: "h16", 3: "w16"},
            "s8": {0: "b", 2: "h8", 3: "w8"}, "mask_features_nhwc": {0: "b", 1: "h4", 2: "w4"},
            "text_emb": {0: "k"}, "taxonomy": {0: "b", 1: "t"}}
    fmt = f"{_GRAPH_FORMAT}, {decoder.infer_layers} layers"  # the weights alone do not say how many run
    return cached_graph(_Inference(decoder), fmt, args, list(_INPUTS), list(_OUTPUTS), axes)


def to_onnx_decoder(model) -> None:
    """Replace model.decoder (in place) by an ONNX Runtime session of its inference pass."""
    cfg = model.cfg
    model.decoder = OrtDecoder(model.decoder, (cfg.hidden_dim, cfg.mask_channels, cfg.text_dim))
