"""Checkpoints: exact round trip through build_segmenter, and a one-line CheckpointError for every
kind of bad file."""
import pickle

import numpy as np
import pytest
import torch
from segmenter_helpers import random_vocabulary, scene_frames, tiny_config

from streamseg.errors import CheckpointError, ConfigError
from streamseg.predictor.checkpoint import load_checkpoint, save_checkpoint
from streamseg.predictor.segmenter import build_segmenter
from streamseg.vocab.files import save_vocabulary


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cfg = tiny_config()
    seg = build_segmenter(cfg)
    vocab = random_vocabulary()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, seg.model, cfg, vocab)
    return seg, vocab, path


def test_round_trip_gives_identical_outputs(saved):
    seg, vocab, path = saved
    loaded = build_segmenter(tiny_config(), checkpoint=str(path))
    assert loaded.vocabulary.names == vocab.names  # the config names none: the checkpoint's is the default
    assert np.array_equal(loaded.vocabulary.embeddings, vocab.embeddings)
    assert loaded.encoder_id == vocab.encoder_id
    frames = scene_frames(3)
    count = 0
    for a, b in zip(seg.propagate(frames, vocab), loaded.propagate(frames)):
        assert [(i.track_id, i.class_id, i.label, i.score, i.box_xyxy) for i in a.instances] == \
               [(i.track_id, i.class_id, i.label, i.score, i.box_xyxy) for i in b.instances]
        assert all(x.mask_box == y.mask_box and np.array_equal(x.crop, y.crop) for x, y in zip(a.instances, b.instances))
        count += len(a.instances)
    assert count > 0
    data = load_checkpoint(path)
    assert data["format"] == "streamseg-checkpoint" and data["version"] == 1
    assert data["config"]["model"]["hidden_dim"] == 32
    assert data["vocabulary"]["encoder_id"] == vocab.encoder_id


def _rewrite(path, tmp_path, edit, name="edited.pt"):
    data = torch.load(path, weights_only=True)
    edit(data)
    out = tmp_path / name
    torch.save(data, out)
    return out


class Foreign:  # a pickled class: refused by weights_only loading
    pass


def _bad_files(path, tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    pickled = tmp_path / "pickled.pt"
    with open(pickled, "wb") as fh:
        pickle.dump({"format": "streamseg-checkpoint", "obj": Foreign()}, fh)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    return {
        "missing": (tmp_path / "nope.pt", r"checkpoint not found: .*nope\.pt"),
        "directory": (tmp_path, "not a file"),
        "garbage": (garbage, "garbage.pt is unreadable"),
        "truncated": (truncated, "truncated.pt is unreadable"),
        "pickled object": (pickled, "pickled.pt is unreadable or not a weights-only"),
        "foreign dict": (other, "not a streamseg checkpoint"),
        "future version": (_rewrite(path, tmp_path, lambda d: d.update(version=2), "v2.pt"), "version 2"),
        "no vocabulary": (_rewrite(path, tmp_path, lambda d: d.pop("vocabulary"), "novocab.pt"),
                          "vocabulary entry missing"),
    }


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("kind", ["missing", "directory", "garbage", "truncated", "pickled object",
                                  "foreign dict", "future version", "no vocabulary"])
def test_bad_file_gives_one_line_checkpoint_error(saved, tmp_path, kind):
    _, _, path = saved
    bad, pattern = _bad_files(path, tmp_path)[kind]
    with pytest.raises(CheckpointError, match=pattern) as exc:
        build_segmenter(tiny_config(), checkpoint=str(bad))
    assert "\n" not in str(exc.value)


def test_checkpoint_of_another_architecture_names_keys_and_shapes(saved, tmp_path):
    _, _, path = saved
    # Fewer decoder layers in the config: the checkpoint's extra layer is unexpected.
    with pytest.raises(CheckpointError, match=r"does not fit.*unexpected keys \(decoder\.") as exc:
        build_segmenter(tiny_config("model.dec_layers=2"), checkpoint=str(path))
    assert "\n" not in str(exc.value)
    # More decoder layers: missing keys.
    with pytest.raises(CheckpointError, match=r"missing keys \(decoder\."):
        build_segmenter(tiny_config("model.dec_layers=4"), checkpoint=str(path))
    # More query slots: shape mismatches quoted with both shapes.
    with pytest.raises(CheckpointError, match=r"shape mismatches \(query_feat\.weight \[8, 32\] vs model \[12, 32\]"):
        build_segmenter(tiny_config("model.num_queries=12"), checkpoint=str(path))
    # A renamed key is both missing and unexpected.
    renamed = _rewrite(path, tmp_path, lambda d: d["state_dict"].__setitem__(
        "query_feat.renamed", d["state_dict"].pop("query_feat.weight")))
    with pytest.raises(CheckpointError, match=r"1 missing keys \(query_feat\.weight\); 1 unexpected keys"):
        build_segmenter(tiny_config(), checkpoint=str(renamed))


def test_vocabulary_of_another_encoder_than_the_checkpoint_is_refused(saved, tmp_path):
    _, _, path = saved
    vfile = tmp_path / "clip_vocab.pt"
    save_vocabulary(vfile, random_vocabulary(encoder_id="clip:ViT-B-32:openai"))
    with pytest.raises(ConfigError, match="clip:ViT-B-32:openai.*minilm:all-MiniLM-L6-v2"):
        build_segmenter(tiny_config(f"vocabulary.file={vfile}"), checkpoint=str(path))
