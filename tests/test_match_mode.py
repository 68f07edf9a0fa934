"""tracker.mode match end to end: a tiny random transformers Mask2Former, imported, run online."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from test_weights_import import TINY, hf_model

from streamseg.interface import Frame
from streamseg.predictor.checkpoint import checkpoint_config, load_checkpoint
from streamseg.predictor.segmenter import build_segmenter
from streamseg.tracking.match import MatchTracks
from streamseg.weights_import.convert import import_transformers

LOW = ["tracker.birth_threshold=0.05", "tracker.keep_threshold=0.02"]  # random weights score low


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("m2f")
    model = hf_model(TINY, small=True, seed=3)
    model.save_pretrained(tmp / "hf")
    out = tmp / "m2f.pt"
    import_transformers(tmp / "hf", out, input_short_side=128)
    return out


def frame(index: int = 0) -> Frame:
    rng = np.random.default_rng(0)
    image = np.zeros((128, 160, 3), dtype=np.uint8)
    image[20:70, 20:80] = (220, 40, 40)
    image[60:120, 90:150] = (30, 200, 60)
    image += rng.integers(0, 30, size=image.shape, dtype=np.uint8)
    return Frame(image=image, index=index, pts=index / 10.0, t_capture_ns=0)


def segmenter(ckpt: Path, extra: list[str] | None = None):
    cfg = checkpoint_config(load_checkpoint(ckpt), LOW + (extra or []))
    return build_segmenter(cfg, str(ckpt))


def test_imported_checkpoints_default_to_match_and_mask2former_scoring(imported: Path) -> None:
    seg = build_segmenter(checkpoint=str(imported))
    assert seg.config.tracker.mode == "match" and seg.config.postprocess.mode == "mask2former"
    assert isinstance(seg.init_state().tracks, MatchTracks)


def test_same_frame_repeated_keeps_ids(imported: Path) -> None:
    seg = segmenter(imported)
    state = seg.init_state()
    first = seg.step(state, frame(0))
    assert len(first.instances) >= 2, "the check needs several tracks"
    ids = [(i.track_id, i.class_id, i.mask_box) for i in first.instances]
    for t in range(1, 5):
        again = seg.step(state, frame(t))
        assert [(i.track_id, i.class_id, i.mask_box) for i in again.instances] == ids
    assert state.tracks.next_id == len(ids) + 1  # no track was born twice


def test_permuted_queries_keep_ids(imported: Path) -> None:
    """The decoder is permutation-equivariant over queries: permuting the learnable queries
    moves each object to another query index. Matching by embedding keeps every ID."""
    seg = segmenter(imported)
    state = seg.init_state()
    first = {i.track_id: (i.class_id, i.mask_box, i.crop.sum()) for i in seg.step(state, frame(0)).instances}
    assert len(first) >= 2
    q = seg.config.model.num_queries
    feat, pos = seg.model.query_feat.weight.detach().clone(), seg.model.query_pos.weight.detach().clone()
    for t, seed in enumerate((1, 2, 3), start=1):
        perm = torch.randperm(q, generator=torch.Generator().manual_seed(seed))
        assert not torch.equal(perm, torch.arange(q))
        with torch.no_grad():
            seg.model.query_feat.weight.copy_(feat[perm])
            seg.model.query_pos.weight.copy_(pos[perm])
        got = {i.track_id: (i.class_id, i.mask_box, i.crop.sum()) for i in seg.step(state, frame(t)).instances}
        assert got == first, f"frame {t}"


def test_propagate_mode_still_available_for_an_imported_model(imported: Path) -> None:
    seg = segmenter(imported, ["tracker.mode=propagate"])
    state = seg.init_state()
    assert not isinstance(state.tracks, MatchTracks)
    out = [seg.step(state, frame(t)) for t in range(2)]
    assert out[0].instances and all(i.track_id >= 1 for i in out[1].instances)


def test_names_pick_classes_of_a_closed_set_model(imported: Path) -> None:
    from streamseg.config import Config
    from streamseg.engine.build import vocabulary_maker
    from streamseg.errors import ConfigError

    seg = segmenter(imported)
    vocab = vocabulary_maker(Config(), seg)(["class3", "class1"])
    assert vocab.names == ["class3", "class1"] and vocab.encoder_id == "closed-set"
    assert vocab.embeddings.argmax(1).tolist() == [3, 1]  # the one-hot rows of those classes
    state = seg.init_state(vocab)
    labels = {i.label for t in range(2) for i in seg.step(state, frame(t)).instances}
    assert labels and labels <= {"class3", "class1"}
    with pytest.raises(ConfigError, match="no class 'clas3' .*closest: class3"):
        vocabulary_maker(Config(), seg)(["clas3"])


def test_eval_runs_an_imported_checkpoint_with_its_own_config_and_classes(tmp_path: Path) -> None:
    """`streamseg eval --checkpoint IMPORTED.pt`: no --config, the dataset's names picked from the
    model's closed set; a model sharing no class with the dataset is a one-line error."""
    import json
    import subprocess
    import sys

    from cli_helpers import one_line_error

    from streamseg.data.synthetic_scene import SYNTHETIC_CLASSES

    root = Path(__file__).resolve().parent.parent
    model = hf_model(TINY, small=True, seed=4)
    model.config.id2label = {0: "square", 1: "boat", 2: "disk", 3: "kite", 4: "ring"}
    model.save_pretrained(tmp_path / "hf")
    ckpt = tmp_path / "m2f.pt"
    import_transformers(tmp_path / "hf", ckpt, input_short_side=128)
    run = lambda *a: subprocess.run([sys.executable, "-m", "streamseg", *a], cwd=root, capture_output=True,  # noqa: E731
                                    text=True, timeout=300)
    data = tmp_path / "data"
    made = run("data", "synth", "--out", str(data), "--videos", "1", "--val-videos", "1", "--frames", "3",
               "--width", "160", "--height", "128")
    assert made.returncode == 0, made.stderr
    results = tmp_path / "results.json"
    r = run("eval", "--checkpoint", str(ckpt), "--data", str(data), "--json", "--max-videos", "1",
            "--results", str(results), *(x for s in LOW for x in ("--set", s)))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["videos"] == 1 and out["frames"] == 3 and out["results"] >= 1
    # the classes it shares with the dataset are square, disk and ring: results use only those
    gt = json.loads((data / "valid.json").read_text())
    shared = {c["id"] for c in gt["categories"] if c["name"] in ("square", "disk", "ring")}
    assert {c["name"] for c in gt["categories"]} == set(SYNTHETIC_CLASSES) and len(shared) == 3
    assert {t["category_id"] for t in json.loads(results.read_text())} <= shared
    model.config.id2label = {i: f"class{i}" for i in range(5)}
    model.save_pretrained(tmp_path / "hf2")
    import_transformers(tmp_path / "hf2", tmp_path / "other.pt", input_short_side=128)
    one_line_error(run("eval", "--checkpoint", str(tmp_path / "other.pt"), "--data", str(data), "--max-videos", "1"),
                   "share no name")
