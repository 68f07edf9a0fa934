"""The per-frame convolutional half of the model (backbone + pixel decoder) as one ONNX Runtime
graph, for the ``onnx`` CPU speed-up.

That half is a fixed feed-forward function of the frame, and ONNX Runtime's CPU kernels for
MobileNet-style depthwise and 1x1 convolutions beat PyTorch's eager ones (measured in
``streamseg bench model --speedups none,onnx``). The masked decoder stays in PyTorch: it carries
per-stream state (queries, memory, targets) and its attention masks change every frame.

The graph is exported in memory when the speed-up is applied (a few seconds, no file written),
with dynamic height and width, from the BN-folded backbone the eager model runs: the same
weights, outputs equal to float rounding.
"""
from __future__ import annotations

import io
import warnings

import torch
from torch import nn

from streamseg.errors import ConfigError
from streamseg.model.pixel_decoder import PixelFeatures

_OUTPUTS = ("s32", "s16", "s8", "s4")


class _Features(nn.Module):
    """backbone + pixel decoder with plain tensor outputs, for the exporter."""

    def __init__(self, backbone: nn.Module, pixel_decoder: nn.Module) -> None:
        super().__init__()
        self.backbone, self.pixel_decoder = backbone, pixel_decoder

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        px = self.pixel_decoder(self.backbone(images))
        return (*px.levels, px.mask_features)


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
        return PixelFeatures(levels=out[:3], mask_features=out[3])


class Precomputed(nn.Module):
    """Stands in for the pixel decoder when OrtFeatures already produced its output."""

    def __init__(self, exported_params: int) -> None:
        super().__init__()
        self.exported_params = exported_params

    def forward(self, feats: PixelFeatures) -> PixelFeatures:
        return feats


def to_onnx_runtime(model) -> None:
    """Replace model.backbone and model.pixel_decoder (in place) by one ONNX Runtime session."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ConfigError("model.cpu_speedups onnx needs onnxruntime (pip install onnxruntime onnx)") from exc
    probe = torch.zeros(1, 3, 64, 64)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        features = _Features(model._backbone_for_step(), model.pixel_decoder).eval()
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # (torch's stubs name paths only; the exporter writes to any binary file object)
        torch.onnx.export(features, (probe,), buf,  # type: ignore[arg-type]
                          dynamo=False, input_names=["images"], output_names=list(_OUTPUTS), opset_version=17,
                          dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}})
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the inference threads, set before the build
    options.inter_op_num_threads = 1
    # no busy-waiting pool threads: they would take the core the decode thread needs (measured:
    # two spinning threads halved the engine's frame rate on 2 cores)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])
    model.backbone = OrtFeatures(session, _count(model.backbone))
    model.pixel_decoder = Precomputed(_count(model.pixel_decoder))


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
