"""The per-frame convolutional half of the model (backbone + pixel decoder) as one ONNX Runtime
graph, for the ``onnx`` CPU speed-up.

That half is a fixed feed-forward function of the frame, and ONNX Runtime's CPU kernels for
MobileNet-style depthwise and 1x1 convolutions beat PyTorch's eager ones (measured in
``streamseg bench model --speedups none,onnx``). The masked decoder has a graph of its own
(``onnx_decoder``), the stateful parts around it stay PyTorch.

The graph is exported when the speed-up is applied (or read from the cache, ``onnx_graphs``),
with dynamic height and width, from the BN-folded backbone the eager model runs: the same
weights, outputs equal to float rounding.
"""
from __future__ import annotations

import torch
from torch import nn

from streamseg.model.pixel_decoder import PixelFeatures
from streamseg.predictor.onnx_graphs import cached_graph, session

_OUTPUTS = ("s32", "s16", "s8", "s4")
# Part of the cache key: bump when the exported graph's inputs, outputs or layout change.
_GRAPH_FORMAT = "features-v2 (s4 as NHWC)"


class _Features(nn.Module):
    """backbone + pixel decoder with plain tensor outputs, for the exporter."""

    def __init__(self, backbone: nn.Module, pixel_decoder: nn.Module) -> None:
        super().__init__()
        self.backbone, self.pixel_decoder = backbone, pixel_decoder

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        px = self.pixel_decoder(self.backbone(images))
        # mask features leave as NHWC: read back as a channels_last view, what the decoder's
        # bilinear pooling wants (a contiguous copy would cost ~1.7 ms a frame on one thread)
        return (*px.levels, px.mask_features.permute(0, 2, 3, 1))


class OrtFeatures(nn.Module):
    """Stands in for the backbone: images (B, 3, H, W) float -> PixelFeatures, computed by ONNX
    Runtime. It holds no parameters, so nothing of it reaches a state_dict."""

    def __init__(self, session, exported_params: int) -> None:
        super().__init__()
        self.session = session
        self.exported_params = exported_params  # what the graph holds (for parameter summaries)

    def forward(self, images: torch.Tensor) -> PixelFeatures:
        arr = images.detach().to(torch.float32).contiguous().numpy()
        out = [torch.from_numpy(o) for o in self.session.run(list(_OUTPUTS), {"images": arr})]
        return PixelFeatures(levels=out[:3], mask_features=out[3].permute(0, 3, 1, 2))


class Precomputed(nn.Module):
    """Stands in for the pixel decoder when OrtFeatures already produced its output."""

    def __init__(self, exported_params: int) -> None:
        super().__init__()
        self.exported_params = exported_params

    def forward(self, feats: PixelFeatures) -> PixelFeatures:
        return feats


def to_onnx_runtime(model) -> None:
    """Replace model.backbone and model.pixel_decoder (in place) by one ONNX Runtime session."""
    features = _Features(model._backbone_for_step(), model.pixel_decoder).eval()
    graph = cached_graph(features, _GRAPH_FORMAT, (torch.zeros(1, 3, 64, 64),), ["images"], list(_OUTPUTS),
                         {"images": {0: "batch", 2: "height", 3: "width"}})
    model.backbone = OrtFeatures(session(graph), _count(model.backbone))
    model.pixel_decoder = Precomputed(_count(model.pixel_decoder))


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
