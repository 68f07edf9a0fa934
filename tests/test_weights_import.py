"""Parity of imported Mask2Former weights with transformers' own implementation.

Random seeded transformers models (every parameter perturbed, so no layer sits at its identity
init), saved as a hub folder, imported with `streamseg weights import`, and run through
OnlineSegmenter.frame_logits: class and mask logits must match transformers' to 1e-4 (fp32).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from streamseg.errors import CheckpointError
from streamseg.predictor.segmenter import build_segmenter
from streamseg.weights_import.convert import import_transformers

TOL = 1e-4
TINY = dict(embed_dim=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4], window_size=2)
TINY_S = dict(embed_dim=16, depths=[2, 2, 3, 2], num_heads=[2, 2, 4, 4], window_size=3)
SWIN_T = dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7)


def hf_model(swin: dict, small: bool, seed: int = 0):
    from transformers import (
        Mask2FormerConfig,
        Mask2FormerForUniversalSegmentation,
        SwinConfig,
    )

    torch.manual_seed(seed)
    sw = SwinConfig(**swin, out_features=["stage1", "stage2", "stage3", "stage4"])
    kw = (dict(feature_size=32, mask_feature_size=32, hidden_dim=32, num_queries=7, decoder_layers=4,
               encoder_layers=2, num_attention_heads=4, dim_feedforward=64, encoder_feedforward_dim=64)
          if small else {})
    cfg = Mask2FormerConfig(backbone_config=sw, num_labels=5,
                            id2label={i: f"class{i}" for i in range(5)}, **kw)
    model = Mask2FormerForUniversalSegmentation(cfg).eval()
    with torch.no_grad():  # off every identity init (zero biases, unit norms, zero offsets)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def save_folder(model, folder: Path) -> Path:
    model.save_pretrained(folder)
    return folder


def max_diffs(model, seg, sizes) -> list[tuple[float, float]]:
    out = []
    for h, w in sizes:
        torch.manual_seed(h * w)
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            ref = model(pixel_values=x)
        ours = seg.frame_logits(x)
        assert ours["class_logits"].shape == ref.class_queries_logits.shape
        assert ours["mask_logits"].shape == ref.masks_queries_logits.shape == (1, ref.masks_queries_logits.shape[1], h // 4, w // 4)
        out.append((float((ours["class_logits"] - ref.class_queries_logits).abs().max()),
                    float((ours["mask_logits"] - ref.masks_queries_logits).abs().max())))
    return out


@pytest.mark.parametrize("swin", [TINY, TINY_S], ids=["tiny", "tiny-deeper"])
def test_parity_small_swin(tmp_path: Path, swin: dict) -> None:
    model = hf_model(swin, small=True)
    out = tmp_path / "m2f.pt"
    result = import_transformers(save_folder(model, tmp_path / "hf"), out)
    assert result.names == [f"class{i}" for i in range(5)]
    seg = build_segmenter(checkpoint=str(out))  # config from the checkpoint
    assert seg.config.model.classifier == "linear" and not seg.config.model.taxonomy
    # stride-32 maps larger than the window (see streamseg/model/swin.py)
    for cls_diff, mask_diff in max_diffs(model, seg, [(128, 160), (160, 224)]):
        assert cls_diff <= TOL and mask_diff <= TOL, (cls_diff, mask_diff)


def test_parity_catches_a_wrong_weight(tmp_path: Path) -> None:
    model = hf_model(TINY, small=True)
    out = tmp_path / "m2f.pt"
    import_transformers(save_folder(model, tmp_path / "hf"), out)
    seg = build_segmenter(checkpoint=str(out))
    with torch.no_grad():
        seg.model.decoder.cross[1].attn.k_proj.weight.mul_(1.1)
    cls_diff, mask_diff = max_diffs(model, seg, [(128, 160)])[0]
    assert max(cls_diff, mask_diff) > 1e-3


def test_foreign_checkpoint_is_refused(tmp_path: Path) -> None:
    model = hf_model(TINY, small=True)
    folder = save_folder(model, tmp_path / "hf")
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    state["model.some_other_head.weight"] = torch.zeros(3)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="unrecognised keys .*some_other_head"):
        import_transformers(folder, tmp_path / "x.pt")
    (folder / "config.json").write_text('{"model_type": "detr"}')
    with pytest.raises(CheckpointError, match="model_type 'detr'"):
        import_transformers(folder, tmp_path / "x.pt")


def test_cli_import_bin_and_run_without_config(tmp_path: Path) -> None:
    model = hf_model(TINY, small=True)
    folder = tmp_path / "hf"
    model.save_pretrained(folder)  # then as the older pytorch_model.bin (weights_only load)
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    out = tmp_path / "m2f.pt"
    r = subprocess.run([sys.executable, "-m", "streamseg", "weights", "import", str(folder), "-o", str(out),
                        "--short-side", "128"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "5 classes" in r.stdout and out.is_file()
    seg = build_segmenter(checkpoint=str(out))
    assert seg.config.model.input_short_side == 128
    (cls_diff, mask_diff), = max_diffs(model, seg, [(128, 160)])
    assert cls_diff <= TOL and mask_diff <= TOL
    bad = subprocess.run([sys.executable, "-m", "streamseg", "weights", "import", str(tmp_path / "nope"),
                          "-o", str(tmp_path / "y.pt")], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "not a folder" in bad.stderr


@pytest.mark.slow
@pytest.mark.parametrize("swin", [SWIN_T, dict(SWIN_T, depths=[2, 2, 18, 2])], ids=["swin-t", "swin-s"])
def test_parity_full_size(tmp_path: Path, swin: dict) -> None:
    model = hf_model(swin, small=False)
    out = tmp_path / "m2f.pt"
    import_transformers(save_folder(model, tmp_path / "hf"), out)
    seg = build_segmenter(checkpoint=str(out))
    diffs = max_diffs(model, seg, [(256, 320), (384, 512)])
    print("max abs diffs (class, mask):", diffs)
    for cls_diff, mask_diff in diffs:
        assert cls_diff <= TOL and mask_diff <= TOL, (cls_diff, mask_diff)
