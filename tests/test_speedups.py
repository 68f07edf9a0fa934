"""model.cpu_speedups: each choice really changes the model it names, and the model still runs."""
from __future__ import annotations

import numpy as np
import torch

from streamseg.config import load_config
from streamseg.interface import Frame
from streamseg.predictor.segmenter import build_segmenter
from streamseg.predictor.speedups import apply_speedups


def test_int8_quantises_the_linear_layers_and_outputs_stay_close() -> None:
    from torch.ao.nn.quantized.dynamic import Linear as DynLinear

    cfg = load_config("tiny-test", ["vocabulary.names=a,b"])
    seg = build_segmenter(cfg)
    text = seg._text_tensor(seg.vocabulary)
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (1, 64, 96, 3), dtype=np.uint8))
    state = seg.init_state()
    with torch.inference_mode():
        ref = seg.model.frame_logits(seg.model.preprocess(image), text)
    apply_speedups(seg.model, ["int8"], "cpu")
    assert any(isinstance(m, DynLinear) for m in seg.model.decoder.modules())
    assert not any(type(m) is torch.nn.Linear for m in seg.model.decoder.modules())
    with torch.inference_mode():
        out = seg.model.frame_logits(seg.model.preprocess(image), text)
    # int8 weights: close to fp32, not equal
    diff = (out["mask_logits"] - ref["mask_logits"]).abs()
    assert 0 < float(diff.max()) and float(diff.mean()) < 0.1 * float(ref["mask_logits"].abs().mean()) + 0.05
    tracks = seg.step(state, Frame(image=image[0].numpy(), index=0, pts=None, t_capture_ns=0))
    assert tracks.width == 96 and tracks.height == 64


def test_no_channels_last_changes_only_the_layout() -> None:
    cfg = load_config("tiny-test", ["vocabulary.names=a,b"])
    seg = build_segmenter(cfg)
    conv = next(m for m in seg.model.backbone.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[-1] > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    text = seg._text_tensor(seg.vocabulary)
    image = torch.from_numpy(np.random.default_rng(1).integers(0, 255, (1, 64, 96, 3), dtype=np.uint8))
    with torch.inference_mode():
        ref = seg.model.frame_logits(seg.model.preprocess(image), text)["mask_logits"]
    apply_speedups(seg.model, ["no_channels_last"], "cpu")
    assert conv.weight.is_contiguous()
    with torch.inference_mode():
        out = seg.model.frame_logits(seg.model.preprocess(image), text)["mask_logits"]
    assert torch.allclose(out, ref, atol=1e-4)
