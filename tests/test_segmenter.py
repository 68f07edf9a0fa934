"""The predictor API on the real OnlineVIS (tiny config, untrained): masks, boxes, IDs, memory,
slot resets, vocabulary swaps."""
import dataclasses

import numpy as np
import pytest
import torch
from segmenter_helpers import box_of, random_vocabulary, scene_frames, tiny_config

from streamseg.errors import ConfigError
from streamseg.interface import Segmenter
from streamseg.predictor.segmenter import build_segmenter
from streamseg.tracking.lifecycle import FREE, TrackLifecycle

COMPONENTS = {"backbone", "pixel_decoder", "tcm", "decoder", "tracker", "postprocess"}


@pytest.fixture(scope="module")
def seg():
    return build_segmenter(tiny_config())


@pytest.fixture(scope="module")
def vocab():
    return random_vocabulary()


@pytest.fixture(scope="module")
def frames():
    return scene_frames(8)  # 150 x 100: not a multiple of the model's stride


def test_step_gives_full_resolution_bool_masks_and_boxes_that_fit_them(seg, vocab, frames):
    assert isinstance(seg, Segmenter)
    seen = 0
    for frame, tracks in zip(frames[:3], seg.propagate(frames[:3], vocab)):
        assert (tracks.frame_index, tracks.width, tracks.height) == (frame.index, 150, 100)
        assert COMPONENTS <= set(tracks.timings_ms)
        ids = [inst.track_id for inst in tracks.instances]
        assert len(set(ids)) == len(ids) and ids == sorted(ids)
        for inst in tracks.instances:
            x, y, w, h = inst.mask_box
            assert inst.crop.shape == (h, w) and inst.crop.dtype == np.bool_
            assert x + w <= 150 and y + h <= 100
            full = inst.full_mask(100, 150)
            assert full.any() and inst.box_xyxy == box_of(full) == (x, y, x + w, y + h)
            assert 0 <= inst.class_id < len(vocab.names) and inst.label == vocab.names[inst.class_id]
            assert 0.0 < inst.score <= 1.0
            seen += 1
    assert seen > 0


def _tensor_bytes(state) -> int:
    ms = state.model_state
    total = sum(t.numel() * t.element_size() for t in (ms.queries, ms.memory, ms.memory_len, ms.taxonomy,
                                                          ms.tcm_scores) if t is not None)
    return total + state.tracks.nbytes()


def test_ids_persist_memory_bounded_and_ended_tracks_reset_their_slot(seg, vocab, frames, monkeypatch):
    m = seg.config.model.memory_length
    state = seg.init_state(vocab)
    prev = state.tracks.track_id.copy()
    highest = 0
    sizes = []
    for frame in frames:
        seg.step(state, frame)
        ids = state.tracks.track_id
        # A slot keeps its ID, ends its track (-> FREE), or, when free, gets a fresh, higher ID.
        changed = ids != prev
        born = changed & (prev == FREE)
        assert np.all((ids[changed] == FREE) | born[changed])
        assert np.all(ids[born] > highest)
        highest = max(highest, int(ids.max()))
        prev = ids.copy()
        assert int(state.model_state.memory_len.max()) <= m
        assert len(state.model_state.window) <= seg.config.model.taxonomy_window
        sizes.append(_tensor_bytes(state))
    assert int(state.model_state.memory_len.max()) == m
    assert len(set(sizes)) == 1  # fixed-size tensors from the first step on
    alive = state.tracks.track_id != FREE
    assert alive.any()
    old_ids = set(state.tracks.track_id[alive].tolist())

    # Make every score fail the keep threshold: all tracks miss, end after max_missed frames, and
    # their slots restart from the learnable query with an empty memory.
    never = dataclasses.replace(seg.config.tracker, birth_threshold=1.0, keep_threshold=1.0)
    monkeypatch.setattr(seg, "lifecycle", TrackLifecycle(never))
    for k in range(seg.config.tracker.max_missed):
        tracks = seg.step(state, frames[k])
        assert tracks.instances == []
    assert np.all(state.tracks.track_id == FREE)
    assert bool((state.model_state.memory_len[0, torch.from_numpy(alive)] == 0).all())
    learnable = seg.model.query_feat.weight.detach()
    assert torch.equal(state.model_state.queries[0, torch.from_numpy(alive)], learnable[torch.from_numpy(alive)])

    monkeypatch.undo()
    tracks = seg.step(state, frames[0])
    assert tracks.instances and min(i.track_id for i in tracks.instances) > max(old_ids)  # never reused
    assert int(state.model_state.memory_len[0, torch.from_numpy(alive)].max()) == 1


def _step_both(seg, a, b, frame):
    return seg.step(a, frame), seg.step(b, frame)


def test_vocabulary_swap_changes_labels_on_the_next_step(seg, vocab, frames):
    renamed = dataclasses.replace(vocab, names=[f"thing{i}" for i in range(len(vocab.names))])
    reversed_ = dataclasses.replace(vocab, names=vocab.names[::-1], embeddings=vocab.embeddings[::-1].copy())
    keep, swap, rev = (seg.init_state(vocab) for _ in range(3))
    for frame in frames[:2]:
        for s in (keep, swap, rev):
            seg.step(s, frame)
    seg.set_vocabulary(swap, renamed)
    seg.set_vocabulary(rev, reversed_)
    assert swap.vocabulary is vocab  # not before the next step
    a, b, c = (seg.step(s, frames[2]) for s in (keep, swap, rev))
    assert a.instances
    assert [i.label for i in a.instances] == [vocab.names[i.class_id] for i in a.instances]
    # Same embeddings, new names: the same classes, labelled from the new vocabulary.
    assert [i.class_id for i in b.instances] == [i.class_id for i in a.instances]
    assert [i.label for i in b.instances] == [f"thing{i.class_id}" for i in a.instances]
    # Reversed vocabulary: the same objects get the mirrored class index, hence the same label.
    k = len(vocab.names)
    assert [i.class_id for i in c.instances] == [k - 1 - i.class_id for i in a.instances]
    assert [i.label for i in c.instances] == [i.label for i in a.instances]


def test_vocabulary_from_another_encoder_or_dim_is_refused(seg, vocab):
    state = seg.init_state(vocab)
    clip = random_vocabulary(encoder_id="clip:ViT-B-32:openai")
    with pytest.raises(ConfigError, match="clip:ViT-B-32:openai.*minilm:all-MiniLM-L6-v2"):
        seg.set_vocabulary(state, clip)
    with pytest.raises(ConfigError, match="dim 512.*text_dim is 384"):
        seg.set_vocabulary(state, random_vocabulary(dim=512))
    assert state.pending_vocabulary is None


def test_init_state_without_any_vocabulary_is_a_config_error(seg):
    with pytest.raises(ConfigError, match="no vocabulary"):
        seg.init_state()


def test_several_streams_share_one_model_with_independent_states(seg, vocab, frames):
    a, b = seg.init_state(vocab), seg.init_state(vocab)
    other = scene_frames(3, seed=11)
    interleaved = []
    for f, g in zip(frames[:3], other):
        interleaved.append(seg.step(a, f))
        seg.step(b, g)  # another stream between a's frames must not disturb stream a
    alone = list(seg.propagate(frames[:3], vocab))
    for x, y in zip(interleaved, alone):
        assert [(i.track_id, i.class_id, i.score) for i in x.instances] == \
               [(i.track_id, i.class_id, i.score) for i in y.instances]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_state_size_constant_and_memory_bounded_over_2000_real_steps(vocab):
    seg = build_segmenter(tiny_config())
    m = seg.config.model.memory_length
    frames = scene_frames(50, width=64, height=48)
    state = seg.init_state(vocab)
    sizes, highest = set(), 0
    for i in range(2000):
        frame = frames[i % len(frames)]
        tracks = seg.step(state, frame)
        assert int(state.model_state.memory_len.max()) <= m
        assert len(state.model_state.window) <= seg.config.model.taxonomy_window
        ids = [inst.track_id for inst in tracks.instances]
        assert all(t > 0 for t in ids) and len(set(ids)) == len(ids)
        highest = max([highest, *ids])
        sizes.add(_tensor_bytes(state))
    assert len(sizes) == 1
    assert state.tracks.next_id > highest


@pytest.mark.parametrize("low,full", [((64, 112), (720, 1280)), ((25, 37), (100, 150)), ((16, 16), (7, 9)),
                                      ((64, 112), (64, 112))])
def test_paste_mask_equals_whole_frame_bilinear_upsampling(low, full):
    from streamseg.predictor.postprocess import paste_mask

    gen = torch.Generator().manual_seed(sum(low) + sum(full))
    for offset in (-3.0, -1.0, 1.0):  # small, medium, frame-filling masks (both code paths)
        coarse = torch.randn(1, 1, low[0] // 4 + 1, low[1] // 4 + 1, generator=gen) * 3
        logits = torch.nn.functional.interpolate(coarse, size=low, mode="bilinear")[0, 0] + offset
        ref = (torch.nn.functional.interpolate(logits[None, None], size=full, mode="bilinear",
                                               align_corners=False)[0, 0] >= 0.0).numpy()
        got = paste_mask(logits, full[0], full[1], 0.0)
        if not ref.any():
            assert got is None
            continue
        crop, (x, y, w, h) = got
        assert crop.shape == (h, w) and crop.dtype == np.bool_
        mask = np.zeros(full, bool)
        mask[y:y + h, x:x + w] = crop
        assert np.array_equal(mask, ref)
        assert (x, y, x + w, y + h) == box_of(ref)  # the crop is tight
    assert paste_mask(torch.full(low, -1.0), full[0], full[1], 0.0) is None
