"""Targets as queries (TarViS): prompts by mask, box or points on the real OnlineVIS (tiny config,
untrained), the segmenter's add/remove/list API, coexistence with the vocabulary, checkpoints
without target weights, and the additive `target` field of protocol v1."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from segmenter_helpers import random_vocabulary, scene_frames, tiny_config

from streamseg.errors import ConfigError, ProtocolError
from streamseg.interface import Instance, Tracks
from streamseg.predictor.checkpoint import load_checkpoint, save_checkpoint
from streamseg.predictor.segmenter import build_segmenter
from streamseg.transport import protocol


@pytest.fixture(scope="module")
def seg():
    torch.manual_seed(0)
    return build_segmenter(tiny_config())


@pytest.fixture(scope="module")
def frames():
    return scene_frames(5)


def _targets(tracks):
    return [i for i in tracks.instances if i.target]


def test_mask_box_point_targets_keep_their_ids_beside_vocabulary_tracks(seg, frames):
    state = seg.init_state(random_vocabulary())
    mask = frames[0].truth[0].mask
    a = seg.add_target(state, mask=mask, name="cup")
    b = seg.add_target(state, box=(10, 10, 60, 50))
    c = seg.add_target(state, points=[(20, 30), (25, 35)], name="ball")
    assert [t.as_dict() for t in seg.list_targets(state)] == [
        {"track_id": a, "name": "cup", "kind": "mask", "pending": True},
        {"track_id": b, "name": "target", "kind": "box", "pending": True},
        {"track_id": c, "name": "ball", "kind": "point", "pending": True}]
    seen_class_ids = set()
    for f in frames:
        tracks = seg.step(state, f)
        tg = _targets(tracks)
        # untrained weights still give non-empty masks at this size; every target is published with
        # its own id, its given name, class_id -1, full-resolution bool masks
        assert [i.track_id for i in tg] == [a, b, c]
        assert [i.label for i in tg] == ["cup", "target", "ball"]
        assert all(i.class_id == -1 and i.full_mask(f.height, f.width).shape == (f.height, f.width) and i.crop.dtype == bool for i in tg)
        assert all(0.0 < i.score <= 1.0 for i in tg)
        others = [i for i in tracks.instances if not i.target]
        seen_class_ids |= {i.track_id for i in others}
    assert seen_class_ids, "the vocabulary's tracks run beside the targets"
    assert not seen_class_ids & {a, b, c}, "target ids never collide with class track ids"
    assert all(not t.as_dict()["pending"] for t in seg.list_targets(state))


def test_remove_target_and_prompt_on_a_frame_in_hand(seg, frames):
    state = seg.init_state(random_vocabulary())
    a = seg.add_target(state, points=(40, 40))
    seg.step(state, frames[0])
    b = seg.add_target(state, mask=frames[0].truth[1].mask, frame=frames[0])  # encoded now
    assert not seg.list_targets(state)[1].as_dict()["pending"]
    assert {i.track_id for i in _targets(seg.step(state, frames[1]))} == {a, b}
    seg.remove_target(state, a)
    assert [i.track_id for i in _targets(seg.step(state, frames[2]))] == [b]
    assert [t.track_id for t in seg.list_targets(state)] == [b]
    with pytest.raises(ConfigError, match="no target with track id"):
        seg.remove_target(state, a)
    # the freed slot is reused by a new target with a new id
    c = seg.add_target(state, box=(0, 0, 30, 30))
    assert c > b
    assert [i.track_id for i in _targets(seg.step(state, frames[3]))] == [b, c]
    # the target state has a fixed capacity: its tensors keep their sizes
    tg = state.model_state.targets
    assert tg.queries.shape[1] == seg.config.model.max_targets


def test_pure_targets_with_an_empty_vocabulary_and_pure_vis_without_targets(seg, frames):
    state = seg.init_state(seg.empty_vocabulary())
    a = seg.add_target(state, mask=frames[0].truth[0].mask)
    for f in frames[:3]:
        tracks = seg.step(state, f)
        assert [i.track_id for i in tracks.instances] == [a] and tracks.instances[0].target
    vis = seg.init_state(random_vocabulary())
    out = seg.step(vis, frames[0])
    assert out.instances and not any(i.target for i in out.instances)
    assert vis.model_state.targets is None


def test_bad_prompts_are_one_line_errors(seg, frames):
    state = seg.init_state(random_vocabulary())
    with pytest.raises(ConfigError, match="exactly one of points, box or mask"):
        seg.add_target(state, points=(1, 1), box=(0, 0, 2, 2))
    with pytest.raises(ConfigError, match="exactly one"):
        seg.add_target(state)
    with pytest.raises(ConfigError, match="box must be"):
        seg.add_target(state, box=(5, 5, 1, 1))
    with pytest.raises(ConfigError, match="mask is empty"):
        seg.add_target(state, mask=np.zeros((10, 10), bool))
    with pytest.raises(ConfigError, match="inside the 150x100 frame"):
        seg.add_target(state, points=(500, 5), frame=frames[0])
    for _ in range(seg.config.model.max_targets):
        seg.add_target(state, points=(5, 5))
    with pytest.raises(ConfigError, match="at most"):
        seg.add_target(state, points=(5, 5))
    assert len(seg.list_targets(state)) == seg.config.model.max_targets


def test_checkpoint_without_target_weights_loads_and_refuses_targets(tmp_path, seg, frames):
    vocab = random_vocabulary()
    path = tmp_path / "old.pt"
    save_checkpoint(path, seg.model, seg.config, vocab)
    data = load_checkpoint(path)
    data["state_dict"] = {k: v for k, v in data["state_dict"].items() if not k.startswith("target_encoder.")}
    torch.save(data, path)
    old = build_segmenter(tiny_config(), str(path))
    state = old.init_state(vocab)
    ref = seg.init_state(vocab)
    a, b = old.step(state, frames[0]), seg.step(ref, frames[0])  # same VIS weights -> same output
    assert [i.track_id for i in a.instances] == [i.track_id for i in b.instances]
    assert all((np.array_equal(x.crop, y.crop) and x.mask_box == y.mask_box) for x, y in zip(a.instances, b.instances))
    with pytest.raises(ConfigError, match="no target-encoder weights"):
        old.add_target(state, points=(3, 3))


def test_target_flag_is_additive_on_the_wire(frames):
    f = frames[0]
    m = f.truth[0].mask
    tracks = Tracks(f.index, f.width, f.height, [
        Instance.from_mask(1, 0, "disk", 0.9, m),
        Instance.from_mask(2, -1, "cup", 0.8, m, target=True)])
    parts = protocol.encode_seg("cam", 0, 0, f, tracks, random_vocabulary())
    header = protocol.decode_header(parts)[2]
    assert "target" not in header["instances"][0] and header["instances"][1]["target"] is True
    msg = protocol.decode(parts)
    assert [i.target for i in msg.instances] == [False, True]
    assert msg.instances[1].label == "cup" and msg.instances[1].class_id == -1
    assert np.array_equal(msg.instances[1].mask, m)
    import msgpack
    bad = msgpack.unpackb(parts[1], raw=False)
    bad["instances"][1]["target"] = 1
    with pytest.raises(ProtocolError, match="'target' must be bool"):
        protocol.decode([parts[0], msgpack.packb(bad, use_bin_type=True), *parts[2:]])


def test_forward_clip_with_prompts_trains_the_target_encoder():
    from streamseg.model.online import OnlineVIS
    from streamseg.model.target_encoder import TargetPrompt

    cfg = tiny_config().model
    torch.manual_seed(2)
    model = OnlineVIS(cfg).train()
    clip = torch.randint(0, 255, (3, 2, 3, 64, 96), dtype=torch.uint8)
    mask = torch.zeros(64, 96, dtype=torch.bool)
    mask[10:30, 20:50] = True
    prompts = [[TargetPrompt("mask", mask=mask), TargetPrompt("point", points=torch.tensor([[40.0, 20.0]]))],
               [TargetPrompt("box", box=(5.0, 5.0, 40.0, 30.0)), TargetPrompt("mask", mask=mask)]]
    outs = model.forward_clip(clip, torch.randn(5, 384), prompts, prompt_frame=1)
    assert outs[0].target_masks is None  # before the prompt frame: no targets
    assert outs[1].target_masks.shape == (2, 2, 16, 24) and outs[2].target_masks.shape == (2, 2, 16, 24)
    assert len(outs[2].target_aux) == cfg.dec_layers + 1
    assert outs[1].pred_masks.shape[1] == cfg.num_queries  # the class outputs stay class-only
    loss = sum(m.sigmoid().mean() for o in outs[1:] for m in o.target_aux)
    loss.backward()
    enc = [n for n, p in model.named_parameters() if n.startswith("target_encoder.")
           and (p.grad is None or p.grad.abs().sum() == 0)]
    assert enc == []


def test_target_prompts_sampled_from_ground_truth():
    from streamseg.training.datasets import Clip
    from streamseg.training.target_clips import sample_target_prompts

    masks = torch.zeros(3, 4, 32, 48, dtype=torch.bool)
    masks[0, :, 2:10, 3:12] = True
    masks[1, :, 20:30, 30:40] = True
    masks[2, 2:, 5:8, 40:46] = True  # only visible from frame 2 on
    present = masks.flatten(2).any(2)
    clip = Clip(torch.zeros(4, 3, 32, 48, dtype=torch.uint8), masks, present, torch.arange(3), torch.zeros(3, dtype=torch.long),
                torch.zeros(3, dtype=torch.long), ["x"])
    rng = np.random.default_rng(0)
    kinds_seen, frames_seen = set(), set()
    for _ in range(40):
        s = sample_target_prompts([clip, clip], rng, max_targets=2, kinds=["mask", "box", "point"])
        assert s is not None and s.masks.shape == (4, 2, 2, 32, 48)
        frames_seen.add(s.prompt_frame)
        for b in range(2):
            for j, p in enumerate(s.prompts[b]):
                obj = s.masks[s.prompt_frame, b, j].numpy()
                assert obj.any()  # prompted objects are visible on the prompt frame
                kinds_seen.add(p.kind)
                if p.kind == "mask":
                    assert np.array_equal(p.mask, obj)
                elif p.kind == "box":
                    ys, xs = np.nonzero(obj)
                    assert p.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
                else:
                    x, y = p.points[0]
                    assert obj[int(y), int(x)]
    assert kinds_seen == {"mask", "box", "point"} and frames_seen == {0, 1, 2, 3}


def test_small_early_target_clips_prompt_the_smallest_objects_in_the_first_half():
    from streamseg.training.datasets import Clip
    from streamseg.training.target_clips import sample_target_prompts

    masks = torch.zeros(3, 6, 32, 48, dtype=torch.bool)
    masks[0, :, 2:10, 3:12] = True  # 72 px
    masks[1, :, 20:30, 30:40] = True  # 100 px
    masks[2, :, 5:8, 40:46] = True  # 18 px: the smallest
    masks[2, 1, 5:30, 40:46] = True  # ... but on frame 1 the largest
    present = masks.flatten(2).any(2)
    clip = Clip(torch.zeros(6, 3, 32, 48, dtype=torch.uint8), masks, present, torch.arange(3),
                torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long), ["x"])
    rng = np.random.default_rng(1)
    frames = set()
    for _ in range(30):
        s = sample_target_prompts([clip, clip], rng, max_targets=2, kinds=["mask"], small_early=1.0)
        frames.add(s.prompt_frame)
        smallest = [2, 0] if s.prompt_frame != 1 else [0, 1]  # by area on the prompt frame
        for b in range(2):
            assert [int(np.flatnonzero([np.array_equal(p.mask, masks[i, s.prompt_frame].numpy())
                                        for i in range(3)])[0]) for p in s.prompts[b]] == smallest
    assert frames == {0, 1, 2}  # the first half of 6 frames
    uniform = {sample_target_prompts([clip], rng, 1, ["mask"], small_early=0.0).prompt_frame for _ in range(60)}
    assert uniform == set(range(6))


def test_train_cli_with_target_clips_logs_a_target_loss(tmp_path):
    import json as _json

    from segmenter_helpers import TINY_CONFIG, run_cli

    data = tmp_path / "d"
    r = run_cli("data", "synth", "--out", str(data), "--videos", "2", "--val-videos", "0", "--frames", "6",
                "--width", "96", "--height", "64", "--instances", "2")
    assert r.returncode == 0, r.stderr
    r = run_cli("train", "--config", str(TINY_CONFIG), "--data", str(data), "--out", str(tmp_path / "run"),
                "--steps", "3", "--threads", "1", "--no-progress", "--set", "train.target_ratio=1.0",
                "--set", "train.log_every=1", "--set", "train.num_points=256")
    assert r.returncode == 0, r.stderr
    records = [_json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    steps = [rec for rec in records if "target" in rec]
    assert len(steps) == 3 and all(rec["target"] > 0 for rec in steps)
    # the trained checkpoint carries target weights: its segmenter accepts targets
    seg = build_segmenter(tiny_config(), str(tmp_path / "run" / "model.pt"))
    assert seg.targets_trained
