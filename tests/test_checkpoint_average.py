"""`streamseg weights average`: the element-wise mean of checkpoints of one model, real files."""
from __future__ import annotations

from pathlib import Path

import torch
from segmenter_helpers import TINY_CONFIG, random_vocabulary

from streamseg.cli import main as cli_main
from streamseg.config import load_config
from streamseg.model.online import OnlineVIS
from streamseg.predictor.checkpoint import load_checkpoint, load_weights, save_checkpoint


def _checkpoint(path: Path, seed: int, overrides: list[str] | None = None, vocab_seed: int = 0) -> Path:
    cfg = load_config(str(TINY_CONFIG), overrides or [])
    torch.manual_seed(seed)
    model = OnlineVIS(cfg.model)
    with torch.no_grad():  # BatchNorm statistics differ too, and a counter that must not be averaged
        for name, buf in model.named_buffers():
            if buf.is_floating_point():
                buf.uniform_(0.5, 1.5)
            elif "num_batches_tracked" in name:
                buf.fill_(seed)
    save_checkpoint(path, model, cfg, random_vocabulary(seed=vocab_seed), extra={"train_state": {"step": seed}})
    return path


def test_average_is_the_element_wise_mean_and_loads(tmp_path: Path, capsys) -> None:
    paths = [_checkpoint(tmp_path / f"c{s}.pt", s) for s in (1, 2, 3)]
    out = tmp_path / "soup" / "mean.pt"
    out.parent.mkdir()
    assert cli_main(["weights", "average", *map(str, paths), "-o", str(out)]) == 0
    assert "the mean of 3 checkpoints" in capsys.readouterr().out
    srcs = [load_checkpoint(p)["state_dict"] for p in paths]
    mean = load_checkpoint(out)
    assert "train_state" not in mean  # an inference checkpoint
    floats = 0
    for key, value in mean["state_dict"].items():
        if value.is_floating_point():
            expected = (srcs[0][key].double() + srcs[1][key].double() + srcs[2][key].double()) / 3
            assert torch.allclose(value.double(), expected, atol=1e-6), key
            assert not torch.equal(value, srcs[0][key]) or torch.equal(srcs[0][key], srcs[1][key]), key
            floats += 1
        else:
            assert torch.equal(value, srcs[0][key]), key  # counters: the first checkpoint's
    assert floats > 100
    assert mean["config"] == load_checkpoint(paths[0])["config"]
    load_weights(OnlineVIS(load_config(str(TINY_CONFIG)).model), mean)  # fits the config's model


def test_average_refuses_what_is_not_one_model(tmp_path: Path, capsys) -> None:
    a = _checkpoint(tmp_path / "a.pt", 1)
    wider = _checkpoint(tmp_path / "wider.pt", 2, ["model.ffn_dim=48"])
    other_vocab = _checkpoint(tmp_path / "vocab.pt", 3, vocab_seed=7)
    out = tmp_path / "out.pt"
    cases = [
        ([a], "at least two checkpoints"),
        ([a, wider], "differ in"),
        ([a, other_vocab], "different vocabularies"),
        ([a, tmp_path / "missing.pt"], "checkpoint not found"),
    ]
    for sources, needle in cases:
        assert cli_main(["weights", "average", *map(str, sources), "-o", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err
        assert not out.exists()


def test_vocabularies_equal_up_to_float_rounding_average(tmp_path: Path) -> None:
    """Each training run re-encodes its class names: embeddings a few 1e-8 apart are one vocabulary
    (a difference of 1e-3 is another, refused above by a different vocab seed)."""
    a = _checkpoint(tmp_path / "a.pt", 1)
    b = _checkpoint(tmp_path / "b.pt", 2)
    data = torch.load(b, weights_only=True)
    data["vocabulary"]["embeddings"] = data["vocabulary"]["embeddings"] + 2e-8
    torch.save(data, b)
    out = tmp_path / "out.pt"
    assert cli_main(["weights", "average", str(a), str(b), "-o", str(out)]) == 0
    assert torch.equal(load_checkpoint(out)["vocabulary"]["embeddings"], load_checkpoint(a)["vocabulary"]["embeddings"])
    data["vocabulary"]["embeddings"] = data["vocabulary"]["embeddings"] + 1e-3
    torch.save(data, b)
    assert cli_main(["weights", "average", str(a), str(b), "-o", str(out)]) != 0
