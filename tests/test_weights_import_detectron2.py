"""Importing original detectron2 Mask2Former / MinVIS checkpoints (.pkl and .pth).

Random seeded transformers models (every parameter perturbed) are written under the original
names (the mapping of transformers' conversion script, reversed: tests/d2_helpers.py), imported
with no config (sizes from the shapes, names from --classes), and run through
OnlineSegmenter.frame_logits: class and mask logits must match transformers' to 1e-4 (fp32).
The ResNet-50 path is also checked feature by feature against torchvision's resnet50.
"""
from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from cli_helpers import one_line_error
from d2_helpers import (
    d2_from_hf_swin,
    d2_resnet_from_torchvision,
    head_pairs,
    torchvision_from_hf_resnet,
    write_pkl,
    write_pth,
)
from test_weights_import import SWIN_T, TINY, TINY_S, TOL, max_diffs

from streamseg.errors import CheckpointError
from streamseg.predictor.segmenter import build_segmenter
from streamseg.weights_import.class_names import COCO, OVIS, YTVIS21
from streamseg.weights_import.convert import import_detectron2

FP64_TOL = 1e-5
SMALL_HEAD = dict(feature_size=32, mask_feature_size=32, hidden_dim=32, num_queries=7, decoder_layers=4,
                  encoder_layers=2, num_attention_heads=8, dim_feedforward=64, encoder_feedforward_dim=64)


def _perturb(model, seed: int) -> None:
    """Off every identity init; BatchNorm statistics too (ResNet), variances kept positive."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)


def max_diffs_fp64(model, seg, sizes) -> list[tuple[float, float]]:
    """max_diffs in float64, on copies of both models: an exact mapping agrees to ~5e-7 (our sine
    position encodings stay float32) whatever the conditioning of the random weights, where a
    random ResNet-50's own fp32 rounding reaches ~1e-3 at stage 4 at 384x512 (transformers'
    fp32 against its fp64 included); a wrong tensor shows (test_resnet50_mask2former_parity)."""
    hf, ours = copy.deepcopy(model).double(), copy.deepcopy(seg.model).double()
    text = torch.from_numpy(seg.vocabulary.embeddings).double()
    out = []
    for h, w in sizes:
        torch.manual_seed(h * w)
        x = torch.randn(1, 3, h, w, dtype=torch.float64)
        with torch.no_grad():
            ref = hf(pixel_values=x)
        with torch.inference_mode():
            o = ours.frame_logits(x, text)
        out.append((float((o["class_logits"] - ref.class_queries_logits).abs().max()),
                    float((o["mask_logits"] - ref.masks_queries_logits).abs().max())))
    return out


def hf_swin(swin: dict, num_labels: int, seed: int = 0, head: dict = SMALL_HEAD):
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

    torch.manual_seed(seed)
    sw = SwinConfig(**swin, out_features=["stage1", "stage2", "stage3", "stage4"])
    model = Mask2FormerForUniversalSegmentation(Mask2FormerConfig(backbone_config=sw, num_labels=num_labels,
                                                                  **head)).eval()
    _perturb(model, seed)
    return model


def hf_resnet50(num_labels: int, seed: int = 0, head: dict = SMALL_HEAD):
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, ResNetConfig

    torch.manual_seed(seed)
    rc = ResNetConfig(out_features=["stage1", "stage2", "stage3", "stage4"])  # ResNet-50 (3/4/6/3)
    model = Mask2FormerForUniversalSegmentation(Mask2FormerConfig(backbone_config=rc, num_labels=num_labels,
                                                                  **head)).eval()
    _perturb(model, seed)
    _calibrate_batchnorm(model.model.pixel_level_module.encoder, seed)
    return model


def _calibrate_batchnorm(backbone: torch.nn.Module, seed: int) -> None:
    """BN statistics of one random batch: perturbed weights with arbitrary statistics grow the
    stage-4 activations to ~1e9, where fp32 rounding alone exceeds any absolute tolerance."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in bns:
        bn.momentum = 1.0
    backbone.train()
    with torch.no_grad():
        backbone(torch.randn(2, 3, 160, 224, generator=g))
    backbone.eval()


@pytest.mark.parametrize("swin,protocol", [(TINY, 2), (TINY_S, 4)], ids=["tiny-pkl2", "tiny-deeper-pkl4"])
def test_swin_pkl_parity(tmp_path: Path, swin: dict, protocol: int) -> None:
    model = hf_swin(swin, num_labels=len(OVIS))
    src = write_pkl(d2_from_hf_swin(model), tmp_path / "model_final.pkl", protocol)
    out = tmp_path / "m2f.pt"
    result = import_detectron2(src, out)  # 25 classes: OVIS without --classes
    assert result.names == list(OVIS)
    seg = build_segmenter(checkpoint=str(out))  # no config: all from the checkpoint
    m = seg.config.model
    assert (m.backbone, m.swin_embed_dim, m.swin_depths, m.swin_heads, m.swin_window) == (
        "swin", swin["embed_dim"], swin["depths"], swin["num_heads"], swin["window_size"])
    assert (m.hidden_dim, m.num_queries, m.dec_layers, m.enc_layers, m.enc_points) == (32, 7, 3, 2, 4)
    assert m.classifier == "linear" and not m.taxonomy and seg.vocabulary.names == list(OVIS)
    # an image model runs online as MinVIS does: fresh queries matched to tracks, Mask2Former scoring
    assert seg.config.tracker.mode == "match" and seg.config.postprocess.mode == "mask2former"
    for cls_diff, mask_diff in max_diffs(model, seg, [(128, 160), (160, 224)]):
        assert cls_diff <= TOL and mask_diff <= TOL, (cls_diff, mask_diff)


def test_swin_pth_cli_with_classes(tmp_path: Path) -> None:
    model = hf_swin(TINY, num_labels=40, seed=1)
    src = write_pth(d2_from_hf_swin(model), tmp_path / "minvis_ytvis21.pth")
    out = tmp_path / "m.pt"
    cmd = [sys.executable, "-m", "streamseg", "weights", "import", str(src), "-o", str(out), "--short-side", "128"]
    ambiguous = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    one_line_error(ambiguous, "40 classes", "--classes", "ytvis19", "ytvis21")
    assert not out.exists()
    r = subprocess.run(cmd + ["--classes", "ytvis21"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Swin, 40 classes, 7 queries, 3 decoder layers" in r.stdout
    seg = build_segmenter(checkpoint=str(out))
    assert seg.vocabulary.names == list(YTVIS21) and seg.config.model.input_short_side == 128
    (cls_diff, mask_diff), = max_diffs(model, seg, [(128, 160)])
    assert cls_diff <= TOL and mask_diff <= TOL, (cls_diff, mask_diff)


def test_resnet50_features_match_torchvision(tmp_path: Path) -> None:
    """detectron2 R50 names -> our resnet50 backbone: features equal torchvision's resnet50 with
    the same weights (FrozenBN statistics included) at every stage."""
    from torchvision.models import resnet50

    torch.manual_seed(3)
    tv = resnet50(weights=None).eval()
    _perturb(tv, 3)
    hf = hf_resnet50(num_labels=len(COCO), seed=4)  # only its Mask2Former head is used
    state = {**d2_resnet_from_torchvision(tv.state_dict()), **_head_from_hf(hf)}
    out = tmp_path / "r50.pt"
    import_detectron2(write_pkl(state, tmp_path / "r50.pkl"), out, classes="coco")
    seg = build_segmenter(checkpoint=str(out))
    assert seg.config.model.backbone == "resnet50" and seg.vocabulary.names == list(COCO)
    x = torch.randn(1, 3, 160, 224)
    with torch.no_grad():
        y = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
        ref = []
        for layer in (tv.layer1, tv.layer2, tv.layer3, tv.layer4):
            y = layer(y)
            ref.append(y)
        ours = seg.model.backbone(x)
    for r, o in zip(ref, ours):
        assert o.shape == r.shape
        assert float((o - r).abs().max()) <= 1e-4 * max(1.0, float(r.abs().max()))


def _head_from_hf(model) -> dict[str, np.ndarray]:
    """Pixel decoder, predictor and class head of a transformers Mask2Former under original names."""
    cfg = model.config
    pairs, fused = head_pairs(cfg.encoder_layers, cfg.decoder_layers)
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    out = {o: sd[t].numpy().copy() for o, t in pairs}
    for o, parts in fused:
        out[o] = torch.cat([sd[t] for t in parts]).numpy().copy()
    out["sem_seg_head.predictor.class_embed.weight"] = sd["class_predictor.weight"].numpy().copy()
    out["sem_seg_head.predictor.class_embed.bias"] = sd["class_predictor.bias"].numpy().copy()
    return out


def test_resnet50_mask2former_parity(tmp_path: Path) -> None:
    """A whole R50 Mask2Former: transformers' (its own ResNet backbone) vs ours from the .pth."""
    from torchvision.models import resnet50

    model = hf_resnet50(num_labels=len(COCO), seed=5)
    tv = resnet50(weights=None).eval()
    tv.load_state_dict(torchvision_from_hf_resnet(model.state_dict()), strict=False)
    x = torch.randn(1, 3, 128, 160)
    with torch.no_grad():  # the transformers -> torchvision names are right: same stage-4 features
        hf_c5 = model.model.pixel_level_module.encoder(x).feature_maps[-1]
        tv_c5 = tv.layer4(tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))))))
    assert float((hf_c5 - tv_c5).abs().max()) <= 1e-4 * float(tv_c5.abs().max())
    state = {**d2_resnet_from_torchvision(tv.state_dict()), **_head_from_hf(model),
             "criterion.empty_weight": np.ones(len(COCO) + 1, np.float32)}
    out = tmp_path / "r50.pt"
    import_detectron2(write_pth(state, tmp_path / "r50.pth"), out)  # 80 classes: COCO
    seg = build_segmenter(checkpoint=str(out))
    for cls_diff, mask_diff in max_diffs(model, seg, [(128, 160), (160, 224)]):
        assert cls_diff <= TOL and mask_diff <= TOL, (cls_diff, mask_diff)
    for cls_diff, mask_diff in max_diffs_fp64(model, seg, [(128, 160)]):
        assert cls_diff <= FP64_TOL and mask_diff <= FP64_TOL, (cls_diff, mask_diff)
    with torch.no_grad():  # one stage-4 conv off by 1 %: far outside the fp64 tolerance
        seg.model.backbone.stages[3][0].conv2.weight.mul_(1.01)
    (cls_diff, mask_diff), = max_diffs_fp64(model, seg, [(128, 160)])
    assert max(cls_diff, mask_diff) > 100 * FP64_TOL


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (__import__("os").system, (f"touch {self.marker}",))


def test_malicious_pkl_is_refused_by_the_cli(tmp_path: Path) -> None:
    marker, src, out = tmp_path / "pwned", tmp_path / "evil.pkl", tmp_path / "x.pt"
    state = d2_from_hf_swin(hf_swin(TINY, num_labels=len(OVIS)))
    src.write_bytes(pickle.dumps({"model": state, "__author__": _Evil(str(marker))}))
    r = subprocess.run([sys.executable, "-m", "streamseg", "weights", "import", str(src), "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    one_line_error(r, "refused", "posix.system")
    assert not marker.exists() and not out.exists()


def test_other_architectures_are_refused(tmp_path: Path) -> None:
    state = d2_from_hf_swin(hf_swin(TINY, num_labels=len(OVIS)))
    rng = np.random.default_rng(0)

    def refused(s: dict, match: str, **kw) -> None:
        with pytest.raises(CheckpointError, match=match) as info:
            import_detectron2(write_pkl(s, tmp_path / "x.pkl"), tmp_path / "x.pt", **kw)
        assert "\n" not in str(info.value)
        assert not (tmp_path / "x.pt").exists()

    # a Mask R-CNN: detectron2 ResNet + RPN + ROI heads, no Mask2Former head
    tv_names = d2_resnet_from_torchvision(__import__("torchvision").models.resnet50(weights=None).state_dict())
    rcnn = {**tv_names, "proposal_generator.rpn_head.conv.weight": rng.standard_normal((8, 8, 3, 3)),
            "roi_heads.box_predictor.cls_score.weight": rng.standard_normal((81, 8))}
    refused(rcnn, "no sem_seg_head.predictor.query_feat.weight")
    refused({**state, "sem_seg_head.predictor.some_head.weight": rng.standard_normal(3)},
            "1 unrecognised keys .*some_head")
    r101 = {**_head_from_hf(hf_resnet50(80)), **tv_names}
    refused({k: v for k, v in r101.items() if not k.startswith("backbone.res4.5.")}, "3/4/5/3 blocks")
    cut = dict(state)
    del cut["sem_seg_head.pixel_decoder.transformer.encoder.layers.1.linear2.weight"]
    refused(cut, "1 missing .*layers.1.ffn.linear2.weight")
    refused(state, "--classes coco has 80 names", classes="coco")
    refused(state, "does not split into 7 heads", heads=7)
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"expected a detectron2 checkpoint \(.pkl or .pth\)"):
        import_detectron2(tmp_path / "x.bin", tmp_path / "x.pt")
    (tmp_path / "bad.pth").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="not loadable with weights_only=True"):
        import_detectron2(tmp_path / "bad.pth", tmp_path / "x.pt")


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["swin-t", "r50"])
def test_full_size_parity(tmp_path: Path, backbone: str) -> None:
    """Mask2Former COCO-instance sizes (hidden 256, 100 queries, 9 layers, 6 encoder layers, 80
    classes) from a .pkl; prints the parity figures, the import time and the checkpoint size."""
    from torchvision.models import resnet50

    if backbone == "swin-t":
        model = hf_swin(SWIN_T, num_labels=80, seed=6, head={})
        state = d2_from_hf_swin(model)
    else:
        model = hf_resnet50(num_labels=80, seed=6, head={})
        tv = resnet50(weights=None)
        tv.load_state_dict(torchvision_from_hf_resnet(model.state_dict()), strict=False)
        state = {**d2_resnet_from_torchvision(tv.state_dict()), **_head_from_hf(model)}
    src, out = write_pkl(state, tmp_path / "model_final.pkl"), tmp_path / "m2f.pt"
    t0 = time.perf_counter()
    import_detectron2(src, out)
    seconds = time.perf_counter() - t0
    seg = build_segmenter(checkpoint=str(out))
    assert (seg.config.model.num_queries, seg.config.model.dec_layers, seg.config.model.hidden_dim) == (100, 9, 256)
    sizes = [(256, 320), (384, 512)]
    diffs, diffs64 = max_diffs(model, seg, sizes), max_diffs_fp64(model, seg, sizes)
    print(f"{backbone}: max abs diffs (class, mask) fp32 {diffs}, fp64 {diffs64}; import {seconds:.1f} s, "
          f"{src.stat().st_size / 2**20:.0f} MiB .pkl -> {out.stat().st_size / 2**20:.0f} MiB")
    for cls_diff, mask_diff in diffs64:
        assert cls_diff <= FP64_TOL and mask_diff <= FP64_TOL, (cls_diff, mask_diff)
    if backbone == "swin-t":  # a random ResNet-50's fp32 rounding alone exceeds 1e-4 at this size
        for cls_diff, mask_diff in diffs:
            assert cls_diff <= TOL and mask_diff <= TOL, (cls_diff, mask_diff)
