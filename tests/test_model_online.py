"""OnlineVIS end to end (tiny config): step/forward_clip shapes and gradients, bounded state, slot
resets, the TCM window schedule, vocabulary swaps, configs."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from streamseg.config import load_config
from streamseg.errors import ConfigError
from streamseg.model.online import OnlineVIS

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.fixture(scope="module")
def cfg():
    return load_config(CONFIGS / "tiny-test.yaml").model


@pytest.fixture(scope="module")
def model(cfg):
    torch.manual_seed(0)
    return OnlineVIS(cfg).eval()


def _text(k: int = 5, d: int = 384, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(k, d, generator=g), dim=-1)


def _frames(n: int, b: int = 1, h: int = 45, w: int = 80, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, b, h, w, 3), dtype=torch.uint8, generator=g)


def _state_numel(state) -> int:
    tensors = [state.queries, state.memory, state.memory_len, state.taxonomy, state.tcm_scores,
               *state.window]
    return sum(t.numel() for t in tensors if t is not None)


def test_configs_load_and_validate():
    for name in ("tiny-test", "cpu-mobilenet", "r50"):
        load_config(CONFIGS / f"{name}.yaml")
    r50 = load_config(CONFIGS / "r50.yaml").model
    assert (r50.hidden_dim, r50.num_queries, r50.dec_layers, r50.enc_layers, r50.enc_heads,
            r50.enc_points, r50.pixel_decoder) == (256, 100, 9, 6, 8, 4, "deformable")
    with pytest.raises(ConfigError, match="nheads"):
        load_config(CONFIGS / "tiny-test.yaml", ["model.nheads=5"])
    with pytest.raises(ConfigError, match="backbone"):
        load_config(CONFIGS / "tiny-test.yaml", ["model.backbone=vgg"])


def test_preprocess_resizes_normalises_and_accepts_both_layouts(model, cfg):
    frames = _frames(1, b=2, h=90, w=160)[0]
    x = model.preprocess(frames)
    assert x.shape == (2, 3, 64, 128) and x.dtype == torch.float32
    torch.testing.assert_close(model.preprocess(frames.permute(0, 3, 1, 2)), x)
    assert model.input_size(360, 640) == (64, 128)  # short side 64, long side capped at 128
    assert model.input_size(640, 360) == (128, 64)
    black = model.preprocess(torch.zeros(1, 32, 32, 3, dtype=torch.uint8))
    torch.testing.assert_close(black[0, :, 0, 0], -torch.tensor([0.485, 0.456, 0.406])
                               / torch.tensor([0.229, 0.224, 0.225]))


def test_step_outputs_shapes(model, cfg):
    with torch.inference_mode():
        state = model.new_state(2)
        out = model.step(state, _frames(1, b=2)[0], _text(5))
    q = cfg.num_queries
    h, w = model.input_size(45, 80)
    assert out.image_size == (h, w)
    assert out.pred_logits.shape == (2, q, 6)
    assert out.pred_masks.shape == (2, q, h // 4, w // 4)
    assert out.taxo_logits.shape == (2, q, 6) and out.tcm_scores.shape == (2, 5)
    assert out.query_embed.shape == (2, q, cfg.hidden_dim)
    assert out.aux == []  # inference: no deep-supervision outputs
    assert set(out.timings_ms) >= {"backbone", "pixel_decoder", "tcm", "decoder"}
    assert state.queries is out.query_embed
    assert state.memory_len.tolist() == [[1] * q] * 2


def _run_and_check_state_size(model, cfg, steps: int) -> None:
    text = _text(5)
    frames = _frames(4, seed=1)
    sizes = []
    with torch.inference_mode():
        state = model.new_state(1)
        for t in range(steps):
            model.step(state, frames[t % 4], text)
            sizes.append(_state_numel(state))
            assert int(state.memory_len.max()) <= cfg.memory_length
            assert len(state.window) <= cfg.taxonomy_window
            assert state.memory.shape[2] == cfg.memory_length
    # after the first window the size only cycles with the window buffer (0..W-1 frames held)
    assert len(set(sizes[cfg.taxonomy_window:])) <= cfg.taxonomy_window
    assert max(sizes) == max(sizes[: 2 * cfg.taxonomy_window])
    assert state.steps == steps and int(state.memory_len.min()) == cfg.memory_length


def test_state_size_is_constant_over_many_steps(model, cfg):
    _run_and_check_state_size(model, cfg, steps=8 * cfg.memory_length)  # 32 steps: 8 x M, 16 x W


@pytest.mark.slow
def test_state_size_is_constant_over_2000_steps(model, cfg):
    _run_and_check_state_size(model, cfg, steps=2000)


def test_memory_holds_the_last_output_queries_in_order(model):
    text = _text(5)
    with torch.inference_mode():
        state = model.new_state(1)
        outs = [model.step(state, f, text) for f in _frames(6, seed=2)]
    m = model.memory_length
    expected = torch.stack([o.query_embed[0] for o in outs[-m:]], dim=1)
    torch.testing.assert_close(state.memory[0, :, -len(outs[-m:]):], expected)


def test_queries_propagate_between_frames(model):
    """Frame t+1 starts from frame t's output queries: resetting them changes the prediction."""
    text = _text(5)
    frames = _frames(3, seed=3)
    with torch.inference_mode():
        a = model.new_state(1)
        for f in frames:
            out_a = model.step(a, f, text)
        b = model.new_state(1)
        for f in frames[:2]:
            model.step(b, f, text)
        model.reset_slots(b, torch.ones(1, model.cfg.num_queries, dtype=torch.bool))
        out_b = model.step(b, frames[2], text)
    assert not torch.allclose(out_a.pred_logits, out_b.pred_logits)


def test_reset_slots_restores_learnable_query_and_clears_memory(model, cfg):
    text = _text(5)
    with torch.inference_mode():
        state = model.new_state(2)
        for f in _frames(3, b=2, seed=4):
            model.step(state, f, text)
        before_q, before_mem = state.queries.clone(), state.memory.clone()
        slots = torch.zeros(2, cfg.num_queries, dtype=torch.bool)
        slots[0, 1] = slots[1, 3] = True
        model.reset_slots(state, slots)
    torch.testing.assert_close(state.queries[0, 1], model.query_feat.weight[1])
    torch.testing.assert_close(state.queries[1, 3], model.query_feat.weight[3])
    assert state.memory_len[0, 1] == 0 and state.memory_len[1, 3] == 0
    assert state.memory[0, 1].abs().sum() == 0
    keep = ~slots
    torch.testing.assert_close(state.queries[keep], before_q[keep])
    torch.testing.assert_close(state.memory[keep], before_mem[keep])
    assert bool((state.memory_len[keep] == 3).all())


def test_tcm_runs_every_frame_of_first_window_then_once_per_window(model, cfg, monkeypatch):
    calls = []
    original = model.tcm.forward

    def counting(text_emb, features):
        calls.append(features.shape[1])
        return original(text_emb, features)

    monkeypatch.setattr(model.tcm, "forward", counting)
    text = _text(5)
    w = cfg.taxonomy_window  # 2 in tiny-test
    tokens = (64 // 32) * (128 // 32)
    with torch.inference_mode():
        state = model.new_state(1)
        ran = []
        for f in _frames(7, h=90, w=160, seed=5):
            before = len(calls)
            model.step(state, f, text)
            ran.append(len(calls) - before)
    # frames 1..W (first window, frames seen so far), then every W-th frame over W frames
    assert ran == [1 if (t < w or t % w == 0) else 0 for t in range(1, 8)]
    assert calls[0] == tokens and calls[1] == w * tokens and all(c == w * tokens for c in calls[1:])


def test_vocabulary_swap_recompiles_taxonomy_on_next_step(model):
    with torch.inference_mode():
        state = model.new_state(1)
        frames = _frames(5, seed=6)
        for f in frames[:4]:
            model.step(state, f, _text(5))
        old = state.taxonomy.clone()
        out = model.step(state, frames[4], _text(7, seed=9))
    assert out.pred_logits.shape[-1] == 8 and out.tcm_scores.shape == (1, 7)
    assert not torch.allclose(state.taxonomy, old)


def test_forward_clip_gradients_reach_every_parameter(cfg):
    torch.manual_seed(1)
    model = OnlineVIS(cfg).train()
    clip = _frames(3, b=2, seed=7).permute(0, 1, 4, 2, 3)  # (T, B, 3, H, W)
    outs = model.forward_clip(clip, _text(5))
    assert len(outs) == 3
    assert all(len(o.aux) == cfg.dec_layers + 1 for o in outs)  # initial queries + every layer
    loss = sum(sum(lg.logsumexp(-1).mean() + m.sigmoid().mean() for lg, m in o.aux)
               + o.taxo_logits.logsumexp(-1).mean() + o.tcm_scores.mean() for o in outs)
    loss.backward()
    missing = [n for n, p in model.named_parameters()
               if (p.grad is None or p.grad.abs().sum() == 0) and not n.startswith("target_encoder.")]
    assert missing == []  # (a clip without prompts leaves the target encoder out: tests/test_targets.py)
    model.zero_grad()
    grad_before = model.query_feat.weight.grad
    outs = model.forward_clip(clip[:2, :1], _text(5))
    outs[-1].pred_logits.logsumexp(-1).mean().backward()
    assert grad_before is None
    # frame 1's loss alone reaches frame 0's computation through the propagated queries (only
    # frame 0 reads query_feat) and through the memory (read from frame 1 on)
    assert model.memory_reader.cross.attn.v_proj.weight.grad.abs().sum() > 0
    assert model.query_feat.weight.grad.abs().sum() > 0


def test_taxonomy_off_is_the_same_model_without_tcm_and_tim(cfg):
    import dataclasses

    off = OnlineVIS(dataclasses.replace(cfg, taxonomy=False)).eval()
    on = OnlineVIS(cfg)
    assert off.tcm is None and off.decoder.tim is None
    names_off = set(n for n, _ in off.named_parameters())
    names_on = set(n for n, _ in on.named_parameters())
    assert names_off < names_on
    assert all(n.startswith(("tcm.", "decoder.tim.")) for n in names_on - names_off)
    with torch.inference_mode():
        out = off.step(off.new_state(1), _frames(1)[0], _text(5))
    assert out.taxo_logits is None and out.tcm_scores is None


def test_inference_uses_folded_backbone_rebuilt_when_weights_change(cfg):
    torch.manual_seed(2)
    model = OnlineVIS(cfg).eval()
    with torch.inference_mode():
        first = model._backbone_for_step()
        assert first is not model.backbone and model._backbone_for_step() is first
    # loading new weights (as a checkpoint does) invalidates the folded copy
    state = {k: v + 0.01 if k.endswith("running_mean") else v
             for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    frames = _frames(1)[0]
    with torch.inference_mode():
        second = model._backbone_for_step()
        assert second is not first
        x = model.preprocess(frames)
        for a, b in zip(model.backbone(x), second(x)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    # training and gradient-enabled calls use the real backbone
    assert model._backbone_for_step() is model.backbone
    assert "_fused_backbone" not in " ".join(model.state_dict())


def test_parameter_counts_add_up(model):
    from streamseg.model.summary import parameter_counts

    counts = parameter_counts(model)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
    assert counts["decoder.tim"] > 0 and counts["tcm"] > 0 and counts["backbone"] > 0
