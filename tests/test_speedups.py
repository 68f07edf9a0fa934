"""model.cpu_speedups: each choice really changes the model it names, and the model still runs."""
from __future__ import annotations

import numpy as np
import pytest
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


def _frames(n: int, seed: int, size: tuple[int, int] = (64, 96)) -> list[Frame]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    return [Frame(image=np.roll(base, 3 * t, axis=1), index=t, pts=None, t_capture_ns=0) for t in range(n)]


@pytest.mark.parametrize("extra", [[], ["model.mask_stride=2"]], ids=["stride4", "stride2"])
def test_onnx_runs_the_convolutional_half_in_onnx_runtime_with_the_same_output(extra) -> None:
    from streamseg.predictor.onnx_features import OrtFeatures

    names = ["vocabulary.names=a,b", "tracker.birth_threshold=0.0", "tracker.keep_threshold=0.0", *extra]
    torch.manual_seed(0)  # the same random weights in both
    eager = build_segmenter(load_config("tiny-test", names))
    torch.manual_seed(0)
    fast = build_segmenter(load_config("tiny-test", names + ["model.cpu_speedups=[onnx]"]))
    assert isinstance(fast.model.backbone, OrtFeatures)
    assert not list(fast.model.backbone.parameters())  # the graph holds the weights, not torch
    # any input size (the graph's height and width are dynamic), batch included
    for shape in ((1, 3, 64, 96), (2, 3, 96, 64)):
        x = torch.randn(*shape)
        with torch.inference_mode():
            ref = eager.model.pixel_decoder(eager.model._backbone_for_step()(x))
            got = fast.model.pixel_decoder(fast.model._backbone_for_step()(x))
        for r, g in zip([*ref.levels, ref.mask_features], [*got.levels, got.mask_features]):
            assert g.shape == r.shape and torch.allclose(g, r, atol=1e-4)
    # whole stream: the same tracks, IDs and masks frame after frame
    sa, sb = eager.init_state(), fast.init_state()
    seen = 0
    for frame in _frames(6, 2):
        a, b = eager.step(sa, frame), fast.step(sb, frame)
        assert [i.track_id for i in a.instances] == [i.track_id for i in b.instances]
        for ia, ib in zip(a.instances, b.instances):
            assert ia.class_id == ib.class_id and abs(ia.score - ib.score) < 1e-3
            assert (ia.full_mask(64, 96) ^ ib.full_mask(64, 96)).sum() <= 2
            seen += 1
    assert seen > 0


def test_onnx_refuses_what_it_cannot_combine_with_and_stays_off_the_gpu() -> None:

    from streamseg.errors import ConfigError

    with pytest.raises(ConfigError, match="does not combine"):
        load_config("tiny-test", ["model.cpu_speedups=[onnx,no_channels_last]"])
    seg = build_segmenter(load_config("tiny-test", ["vocabulary.names=a,b"]))
    backbone = seg.model.backbone
    assert apply_speedups(seg.model, ["onnx", "int8"], "cuda") is seg.model  # a GPU runs the eager model
    assert seg.model.backbone is backbone


def test_onnx_graph_is_cached_by_weights_and_the_cache_is_optional(tmp_path, monkeypatch) -> None:

    from streamseg.predictor import onnx_graphs

    monkeypatch.setenv("STREAMSEG_CACHE", str(tmp_path / "cache"))
    names = ["vocabulary.names=a,b", "model.cpu_speedups=[onnx]"]
    x = torch.randn(1, 3, 64, 96)

    def build(seed: int):
        torch.manual_seed(seed)
        seg = build_segmenter(load_config("tiny-test", names))
        with torch.inference_mode():
            return seg.model.pixel_decoder(seg.model._backbone_for_step()(x)).mask_features

    first = build(0)
    graphs = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(graphs) == 1
    real_export = onnx_graphs.export

    def no_export(*args):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_graphs, "export", no_export)
    assert torch.equal(build(0), first)  # the same weights: read from the cache, the same output
    with pytest.raises(AssertionError, match="exported again"):
        build(1)  # other weights, another key
    monkeypatch.setattr(onnx_graphs, "export", real_export)
    monkeypatch.setattr(onnx_graphs, "CACHE_KEEP", 2)
    build(1)
    build(2)
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 2  # the least recent dropped
    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder")
    monkeypatch.setenv("STREAMSEG_CACHE", str(blocked))
    assert torch.equal(build(0), first)  # an unusable cache costs only the export


@pytest.mark.parametrize("extra", [[], ["model.mask_stride=2"]], ids=["stride4", "stride2"])
def test_onnx_decoder_gives_the_same_stream_with_targets_and_falls_back_where_it_must(extra) -> None:
    from streamseg.errors import ConfigError
    from streamseg.predictor.onnx_decoder import OrtDecoder

    names = ["vocabulary.names=a,b", "tracker.birth_threshold=0.0", "tracker.keep_threshold=0.0", *extra]
    torch.manual_seed(3)
    eager = build_segmenter(load_config("tiny-test", names))
    torch.manual_seed(3)
    fast = build_segmenter(load_config("tiny-test", names + ["model.cpu_speedups=[onnx,onnx_decoder]"]))
    assert isinstance(fast.model.decoder, OrtDecoder)
    calls = []
    real = fast.model.decoder.eager.forward
    fast.model.decoder.eager.forward = lambda *a, **k: calls.append(1) or real(*a, **k)  # type: ignore[method-assign]
    for size in ((64, 96), (96, 64)):  # two aspect ratios: other feature sizes than the export's probe
        frames = _frames(6, 4, size)
        sa, sb = eager.init_state(), fast.init_state()
        seen = 0
        for t, frame in enumerate(frames):
            if t == 2:  # a target joins the class queries: one query more for the graph
                box = (10, 10, 40, 40)
                assert eager.add_target(sa, box=box) == fast.add_target(sb, box=box)
            a, b = eager.step(sa, frame), fast.step(sb, frame)
            assert [(i.track_id, i.target) for i in a.instances] == [(i.track_id, i.target) for i in b.instances]
            for ia, ib in zip(a.instances, b.instances):
                assert ia.class_id == ib.class_id and abs(ia.score - ib.score) < 1e-3
                assert (ia.full_mask(*size) ^ ib.full_mask(*size)).sum() <= 2
                seen += 1
        assert seen > 0
    assert not calls  # every step above ran in the graph
    # targets only (an empty vocabulary: no taxonomy) runs the eager decoder, the same as before
    st = fast.init_state(fast.empty_vocabulary())
    fast.add_target(st, box=(10, 10, 40, 40))
    fast.step(st, _frames(1, 5)[0])
    assert calls
    with pytest.raises(ConfigError, match="onnx_decoder"):
        load_config("tiny-test", ["model.cpu_speedups=[onnx_decoder,compile]"])


def test_onnx_decoder_with_fewer_inference_layers_matches_the_eager_decoder() -> None:
    names = ["vocabulary.names=a,b", "model.infer_layers=2"]
    torch.manual_seed(5)
    eager = build_segmenter(load_config("tiny-test", names))
    torch.manual_seed(5)
    fast = build_segmenter(load_config("tiny-test", names + ["model.cpu_speedups=[onnx_decoder]"]))
    x = torch.randn(1, 3, 64, 96)
    text = eager._text_tensor(eager.vocabulary)
    outs = []
    for seg in (eager, fast):
        state = seg.model.new_state(1)
        with torch.inference_mode():
            for _ in range(3):  # the taxonomy is compiled on the first step
                out = seg.model.step(state, x, text)
        outs.append(out.pred_masks)
    torch.testing.assert_close(outs[1], outs[0], atol=1e-4, rtol=1e-4)
