"""Text encoders, vocabulary files, the embedding cache and `streamseg vocab build|show`."""
import numpy as np
import pytest
from segmenter_helpers import random_vocabulary, run_cli, scene_frames, tiny_config, write_tiny_clip

from streamseg.cli import main
from streamseg.config import load_config
from streamseg.errors import ConfigError
from streamseg.predictor.segmenter import build_segmenter
from streamseg.vocab import files as vocabulary_module
from streamseg.vocab.encoders import MINILM_ID, OpenClipEncoder, encode_names, encoder_id_for_spec, parse_encoder_spec
from streamseg.vocab.files import build_vocabulary, load_vocabulary, resolve_vocabulary, save_vocabulary


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return write_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny")


@pytest.mark.parametrize("spec,parsed,encoder_id", [
    ("minilm", ("minilm", None, None), MINILM_ID),
    ("clip:ViT-B-32", ("clip", "ViT-B-32", None), "clip:ViT-B-32:none"),
    ("clip:ViT-B-32:laion2b_s34b_b79k", ("clip", "ViT-B-32", "laion2b_s34b_b79k"),
     "clip:ViT-B-32:laion2b_s34b_b79k"),
    ("clip:ViT-B-32:none", ("clip", "ViT-B-32", None), "clip:ViT-B-32:none"),
    ("clip:local-dir:/m/tiny", ("clip", "local-dir:/m/tiny", None), "clip:local-dir:/m/tiny"),
])
def test_encoder_specs(spec, parsed, encoder_id):
    assert parse_encoder_spec(spec) == parsed
    assert encoder_id_for_spec(spec) == encoder_id


@pytest.mark.parametrize("spec", ["", "bert", "clip:", "minilm2"])
def test_unknown_encoder_spec_is_a_config_error(spec):
    with pytest.raises(ConfigError, match="unknown text encoder"):
        parse_encoder_spec(spec)


class _TableEncoder:
    """Fixed vectors per prompt, to check the averaging arithmetic itself."""

    encoder_id = "table"
    dim = 2
    table = {"a x": [1.0, 0.0], "b x": [0.0, 1.0], "a y": [3.0, 4.0], "b y": [0.0, -1.0]}

    def encode(self, texts):
        rows = np.array([self.table[t] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_class_embedding_is_normalised_mean_over_templates():
    emb = encode_names(_TableEncoder(), ["x", "y"], ["a {}", "b {}"])
    x = np.array([0.5, 0.5]) / np.linalg.norm([0.5, 0.5])
    y = np.array([0.3, -0.1]) / np.linalg.norm([0.3, -0.1])  # mean of (0.6, 0.8) and (0, -1)
    np.testing.assert_allclose(emb, np.stack([x, y]), rtol=1e-6)
    with pytest.raises(ConfigError, match="templates"):
        encode_names(_TableEncoder(), ["x"], ["no placeholder"])


def test_clip_encoder_class_and_cli_agree_and_use_the_folder_weights(tiny_clip, tmp_path):
    names, templates = ["person", "car", "traffic light"], ["a photo of a {}.", "the {} here."]
    enc = OpenClipEncoder(f"local-dir:{tiny_clip}")
    assert enc.dim == 32 and enc.encoder_id == f"clip:local-dir:{tiny_clip}"
    direct = encode_names(enc, names, templates)
    np.testing.assert_allclose(np.linalg.norm(direct, axis=1), 1.0, rtol=1e-5)

    out = tmp_path / "v.pt"
    r = run_cli("vocab", "build", "--encoder", f"clip:local-dir:{tiny_clip}", "--names", ",".join(names),
                "--templates", *templates, "--no-cache", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert f"3 names, dim 32, encoder clip:local-dir:{tiny_clip}" in r.stdout
    vocab = load_vocabulary(out)
    assert vocab.names == names and vocab.encoder_id == enc.encoder_id
    np.testing.assert_allclose(vocab.embeddings, direct, atol=1e-5)

    # Without the weights file the folder gives open_clip's (seeded) random init: other embeddings.
    bare = write_tiny_clip(tmp_path / "bare", with_weights=False)
    other = encode_names(OpenClipEncoder(f"local-dir:{bare}"), names, templates)
    assert np.abs(other - direct).max() > 0.1


def test_minilm_cli_build_and_show(tmp_path, capsys):
    out = tmp_path / "vocab.pt"
    r = run_cli("vocab", "build", "--names", "person,man,car", "--no-cache", "-o", str(out))
    assert r.returncode == 0, r.stderr
    vocab = load_vocabulary(out)
    assert vocab.names == ["person", "man", "car"]
    assert vocab.encoder_id == MINILM_ID and vocab.embeddings.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vocab.embeddings, axis=1), 1.0, rtol=1e-5)
    cos = vocab.embeddings @ vocab.embeddings.T
    assert cos[0, 1] > cos[0, 2]  # a real sentence encoder: "person" is nearer "man" than "car"

    assert main(["vocab", "show", str(out)]) == 0  # in-process: the subprocess path is covered above
    shown = capsys.readouterr().out
    assert "person,man,car" in shown and f"encoder {MINILM_ID}, dim 384" in shown


@pytest.mark.parametrize("args,message", [
    (["--encoder", "word2vec", "--names", "a"], "unknown text encoder 'word2vec'"),
    (["--names", "a", "--templates", "no placeholder"], "templates"),
    (["--names", "a,a"], "unique"),
])
def test_cli_build_errors_exit_2_with_one_line(tmp_path, args, message):
    r = run_cli("vocab", "build", *args, "-o", str(tmp_path / "x.pt"))
    assert r.returncode == 2
    assert r.stderr.startswith("streamseg: error: ") and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.pt").exists()


def test_vocabulary_file_round_trip_and_bad_files(tmp_path):
    import torch

    vocab = random_vocabulary(names=["a", "b"], dim=8, encoder_id="clip:X:none")
    save_vocabulary(tmp_path / "v.pt", vocab, ["{}"])
    back = load_vocabulary(tmp_path / "v.pt")
    assert back.names == vocab.names and back.encoder_id == vocab.encoder_id and back.vocab_id == vocab.vocab_id
    np.testing.assert_allclose(back.embeddings, vocab.embeddings, rtol=1e-6)

    with pytest.raises(ConfigError, match="vocabulary file not found"):
        load_vocabulary(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00junk" * 50)
    with pytest.raises(ConfigError, match="junk.pt is unreadable"):
        load_vocabulary(tmp_path / "junk.pt")
    data = torch.load(tmp_path / "v.pt", weights_only=True)
    data["embeddings"] = data["embeddings"][:1]
    torch.save(data, tmp_path / "short.pt")
    with pytest.raises(ConfigError, match=r"shape \[2, D\]"):
        load_vocabulary(tmp_path / "short.pt")
    torch.save({"names": ["a"]}, tmp_path / "nofmt.pt")
    with pytest.raises(ConfigError, match="not a streamseg vocabulary"):
        load_vocabulary(tmp_path / "nofmt.pt")


def test_cache_is_keyed_by_encoder_templates_and_names(tiny_clip, tmp_path, monkeypatch):
    spec = f"clip:local-dir:{tiny_clip}"
    first = build_vocabulary(["cat", "dog"], spec, ["a {}."], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 1

    def no_encoder(spec):
        raise AssertionError("the encoder must not be built on a cache hit")

    monkeypatch.setattr("streamseg.vocab.encoders.make_encoder", no_encoder)
    again = build_vocabulary(["cat", "dog"], spec, ["a {}."], cache_dir=tmp_path)
    assert np.array_equal(again.embeddings, first.embeddings) and again.encoder_id == first.encoder_id
    for names, templates in ((["cat", "cow"], ["a {}."]), (["cat", "dog"], ["the {}."])):
        with pytest.raises(AssertionError, match="cache hit"):
            build_vocabulary(names, spec, templates, cache_dir=tmp_path)


def test_config_vocabulary_file_is_relative_to_the_config(tmp_path):
    vocab = random_vocabulary()
    save_vocabulary(tmp_path / "v.pt", vocab)
    (tmp_path / "c.yaml").write_text("vocabulary:\n  file: v.pt\n")
    cfg = load_config(tmp_path / "c.yaml")
    got = resolve_vocabulary(cfg.vocabulary, tmp_path)
    assert got.names == vocab.names
    assert resolve_vocabulary(load_config(None).vocabulary) is None
    with pytest.raises(ConfigError, match="vocabulary.templates"):
        load_config(None, ["vocabulary.templates=[nothing]"])
    assert vocabulary_module.default_cache_dir().parts[-3:] == (".cache", "streamseg", "vocab")


def test_segmenter_runs_on_a_clip_vocabulary_file(tiny_clip, tmp_path):
    names = ["disk", "square", "triangle"]
    vfile = tmp_path / "clip.pt"
    save_vocabulary(vfile, build_vocabulary(names, f"clip:local-dir:{tiny_clip}", ["a {}."], use_cache=False))
    seg = build_segmenter(tiny_config("model.text_dim=32", f"vocabulary.file={vfile}"))
    assert seg.encoder_id == f"clip:local-dir:{tiny_clip}"
    tracks = [t for t in seg.propagate(scene_frames(2))]
    labels = {i.label for t in tracks for i in t.instances}
    assert labels and labels <= set(names)
