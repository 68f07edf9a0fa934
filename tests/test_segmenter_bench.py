"""`streamseg bench model` end to end on the tiny config (figures are printed, never asserted)."""
import json

from segmenter_helpers import TINY_CONFIG, random_vocabulary

from streamseg.cli import main
from streamseg.vocab.files import save_vocabulary


def _tiny_with_vocabulary(tmp_path):
    """The tiny config with a vocabulary file of the scene's classes beside it."""
    save_vocabulary(tmp_path / "v.pt", random_vocabulary())
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY_CONFIG.read_text() + "\nvocabulary:\n  file: v.pt\n")
    return cfg


def test_bench_model_json_report(tmp_path, capsys):
    cfg = _tiny_with_vocabulary(tmp_path)
    code = main(["bench", "model", "--config", str(cfg), "--frames", "2", "--sizes", "96x64",
                 "--soak", "3", "--json", "--untrained"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report["sizes"]) == ["96x64"]
    for size in report["sizes"].values():
        assert size["frames"] == 2 and size["fps"] > 0
        assert {"backbone", "pixel_decoder", "tcm", "decoder", "tracker", "postprocess",
                "total"} <= set(size["ms_median"])
    assert report["sizes"]["96x64"]["inference_size"] == [64, 96]  # short side 64, multiple of 32
    assert report["vocabulary"] == {"names": 5, "encoder": "minilm:all-MiniLM-L6-v2"}
    assert report["memory"]["ru_maxrss_mb"] > 0
    assert list(report["soak"]["rss_mb"]) == ["3"] and report["soak"]["frames"] == 3
    assert report["params_m"]["total"] > report["params_m"]["backbone"] > 0


def test_bench_model_rejects_bad_sizes(capsys):
    assert main(["bench", "model", "--config", str(TINY_CONFIG), "--sizes", "640by360"]) == 2
    assert "--sizes: '640by360' is not WIDTHxHEIGHT" in capsys.readouterr().err


def test_bench_model_targets_pairs_rounds(tmp_path, capsys, monkeypatch):
    """--targets: every count gets the same frames in each interleaved round; each count's cost
    against the first is one figure per round and their median (a wide range shows the noise)."""
    import streamseg.bench.model as bench_model

    monkeypatch.setattr(bench_model, "TARGET_FRAMES_PER_ROUND", 2)  # the tiny model, few frames
    cfg = _tiny_with_vocabulary(tmp_path)
    code = main(["bench", "model", "--config", str(cfg), "--frames", "2", "--sizes", "96x64",
                 "--targets", "0,2", "--json", "--untrained"])
    assert code == 0
    t = json.loads(capsys.readouterr().out)["targets"]
    assert t["rounds"] == bench_model.TARGET_ROUNDS and t["base"] == 0
    zero, two = t["counts"]["0"], t["counts"]["2"]
    assert zero["frames"] == two["frames"] == bench_model.TARGET_ROUNDS * 2  # raised from --frames 2
    assert "fps_cost_pct_median" not in zero
    costs = two["fps_cost_pct_by_round"]
    assert len(costs) == bench_model.TARGET_ROUNDS
    assert min(costs) <= two["fps_cost_pct_median"] <= max(costs)
    assert all(-1000 < c < 100 for c in costs)  # 100 * (1 - fps_2 / fps_0) per round: below 100 %
