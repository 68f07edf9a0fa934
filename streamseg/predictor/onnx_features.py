"""The per-frame convolutional half of the model (backbone + pixel decoder) as one ONNX Runtime
graph, for the ``onnx`` CPU speed-up.

That half is a fixed feed-forward function of the frame, and ONNX Runtime's CPU kernels for
MobileNet-style depthwise and 1x1 convolutions beat PyTorch's eager ones (measured in
``streamseg bench model --speedups none,onnx``). The masked decoder stays in PyTorch: it carries
per-stream state (queries, memory, targets) and its attention masks change every frame.

The graph is exported when the speed-up is applied, with dynamic height and width, from the
BN-folded backbone the eager model runs: the same weights, outputs equal to float rounding. The
export costs about a second, so the graph is kept in ``$STREAMSEG_CACHE/onnx/`` under a hash of
those weights, the graph's format and the torch version; a cache that cannot be written costs
only the time (the graph is then used from memory).
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from streamseg.errors import ConfigError
from streamseg.model.pixel_decoder import PixelFeatures

_OUTPUTS = ("s32", "s16", "s8", "s4")
# Part of the cache key: bump when the exported graph's inputs, outputs or layout change.
_GRAPH_FORMAT = "features-v2 (s4 as NHWC)"
CACHE_KEEP = 8  # graphs kept (least recently used dropped): training evaluations make new ones


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
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ConfigError("model.cpu_speedups onnx needs onnxruntime (pip install onnxruntime onnx)") from exc
    features = _Features(model._backbone_for_step(), model.pixel_decoder).eval()
    path = cache_dir() / f"{graph_key(features)}.onnx"
    graph = _load(path)
    if graph is None:
        graph = _export(features)
        _store(path, graph)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the inference threads, set before the build
    options.inter_op_num_threads = 1
    # no busy-waiting pool threads: they would take the core the decode thread needs (measured:
    # two spinning threads halved the engine's frame rate on 2 cores)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    model.backbone = OrtFeatures(session, _count(model.backbone))
    model.pixel_decoder = Precomputed(_count(model.pixel_decoder))


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def cache_dir() -> Path:
    return Path(os.environ.get("STREAMSEG_CACHE") or Path.home() / ".cache" / "streamseg") / "onnx"


def graph_key(features: nn.Module) -> str:
    """What the exported graph depends on: every weight and buffer, the format, torch."""
    h = hashlib.sha256(f"{_GRAPH_FORMAT}|torch {torch.__version__}|opset 17".encode())
    for name, t in features.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def _export(features: nn.Module) -> bytes:
    probe = torch.zeros(1, 3, 64, 64)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # (torch's stubs name paths only; the exporter writes to any binary file object)
        torch.onnx.export(features, (probe,), buf,  # type: ignore[arg-type]
                          dynamo=False, input_names=["images"], output_names=list(_OUTPUTS), opset_version=17,
                          dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}})
    return buf.getvalue()


def _load(path: Path) -> bytes | None:
    try:
        graph = path.read_bytes()
        os.utime(path)  # recently used
        return graph
    except OSError:
        return None


def _store(path: Path, graph: bytes) -> None:
    """Write atomically (concurrent processes may export the same graph); failures are not errors."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(graph)
        os.replace(tmp, path)
        graphs = sorted(path.parent.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in graphs[CACHE_KEEP:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass
