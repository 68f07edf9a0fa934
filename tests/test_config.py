"""Config loading: typed fields, one-line errors naming the field, overrides, relative checkpoints."""
import subprocess
import sys

import pytest

from streamseg.config import config_to_dict, load_config
from streamseg.errors import ConfigError


def write(tmp_path, text: str):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_without_file():
    cfg = load_config(None)
    assert cfg.engine.publish == "tcp://127.0.0.1:5555"
    assert cfg.tracker.max_missed == 20


def test_yaml_values_and_override(tmp_path):
    p = write(tmp_path, "tracker:\n  birth_threshold: 0.6\nengine:\n  status_hz: 2\n")
    cfg = load_config(p, overrides=["tracker.max_missed=7", "engine.publish=ipc:///tmp/x", "train.lr=1e-3"])
    assert cfg.train.lr == 0.001
    assert cfg.tracker.birth_threshold == 0.6
    assert cfg.engine.status_hz == 2.0 and isinstance(cfg.engine.status_hz, float)
    assert cfg.tracker.max_missed == 7
    assert cfg.engine.publish == "ipc:///tmp/x"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("tracker:\n  max_mised: 4\n", "unknown key 'tracker.max_mised'"),
        ("nonsense: 1\n", "unknown key 'nonsense'"),
        ("tracker:\n  max_missed: four\n", "tracker.max_missed must be an integer"),
        ("tracker:\n  max_missed: 0\n", "tracker.max_missed must be >= 1"),
        ("source:\n  realtime: 3\n", "source.realtime must be true or false"),
        ("engine:\n  status_hz: fast\n", "engine.status_hz must be a number"),
        ("tracker: [1, 2]\n", "tracker must be a mapping"),
        ("tracker: {max_missed: 4\n", "not valid YAML"),
    ],
)
def test_bad_values_name_the_field(tmp_path, text, needle):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/nonexistent/streamseg.yaml")


def test_checkpoint_resolves_relative_to_config(tmp_path):
    p = write(tmp_path, "checkpoint: weights/m.pt\n")
    cfg = load_config(p)
    assert cfg.checkpoint == str(tmp_path / "weights" / "m.pt")
    assert "source_path" not in config_to_dict(cfg)


def test_every_shipped_config_loads():
    from pathlib import Path

    configs = sorted(Path(__file__).resolve().parents[1].glob("configs/*.yaml"))
    for path in configs:
        load_config(path)


def test_cli_bad_config_value_is_one_line_error(tmp_path):
    p = write(tmp_path, "engine:\n  send_hwm: -1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "streamseg", "run", "--source", "synthetic://", "--config", str(p),
         "--max-frames", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if line]
    assert lines[-1].startswith("streamseg: error: config: engine.send_hwm must be >= 1")
    assert len(lines) == 1


def test_device_specs_resolve_or_fail_in_one_line():
    import torch

    from streamseg.predictor.device import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda:0")


def test_inference_threads_default_to_half_the_usable_cores(monkeypatch) -> None:
    import os

    import torch

    from streamseg.config import load_config
    from streamseg.predictor.device import inference_threads
    from streamseg.predictor.segmenter import build_segmenter

    assert inference_threads(3) == 3  # an explicit setting wins
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert inference_threads(0) == 8
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert inference_threads(0) == 1  # never 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    before = torch.get_num_threads()
    try:
        build_segmenter(load_config("tiny-test"))  # model.threads = 0: auto
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_autocast_and_speedups_are_checked() -> None:
    import pytest

    from streamseg.config import load_config
    from streamseg.errors import ConfigError

    assert load_config("tiny-test", ["model.autocast=bf16"]).model.autocast == "bf16"
    with pytest.raises(ConfigError, match="autocast"):
        load_config("tiny-test", ["model.autocast=fp8"])
    assert load_config("tiny-test", ["model.cpu_speedups=int8,compile"]).model.cpu_speedups == ["int8", "compile"]
    with pytest.raises(ConfigError, match="cpu_speedups: unknown turbo"):
        load_config("tiny-test", ["model.cpu_speedups=turbo"])
