"""`streamseg config show`, packaged config names, comma lists and close-match errors (real CLI)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from streamseg.config import load_config

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^[a-z_]+(\.[a-z_0-9]+)* = .*  # \S.*$")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "streamseg", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def test_config_show_prints_every_key_one_line_each_from_any_folder(tmp_path):
    out = cli("config", "show", "--config", "cpu-mobilenet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert all(LINE.match(line) for line in lines), [ln for ln in lines if not LINE.match(ln)][:3]
    keys = [line.split(" = ")[0] for line in lines]
    assert len(keys) == len(set(keys)) and len(keys) > 60
    assert "engine.publish = tcp://127.0.0.1:5555  # str" in out.stdout
    assert any(k.startswith("tracker.") for k in keys) and any(k.startswith("train.") for k in keys)
    cfg = load_config(ROOT / "configs" / "cpu-mobilenet.yaml")
    assert f"model.backbone = {cfg.model.backbone}  # " in out.stdout  # values are the config's


def test_set_takes_a_comma_list_and_unknown_keys_name_the_closest(tmp_path):
    out = cli("config", "show", "--set", "vocabulary.names=person, car", cwd=tmp_path)
    assert out.returncode == 0 and "vocabulary.names = person,car  # list[str]" in out.stdout
    assert load_config(None, ["vocabulary.names=person,car"]).vocabulary.names == ["person", "car"]
    bad = cli("config", "show", "--set", "engine.publsh=tcp://x:1", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == "streamseg: error: config: unknown key 'engine.publsh' (closest: engine.publish)"


def test_unknown_config_name_lists_the_shipped_ones(tmp_path):
    bad = cli("config", "show", "--config", "cpu-mobilnet", cwd=tmp_path)
    assert bad.returncode == 2 and "closest shipped configs: cpu-mobilenet" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["cpu-mobilenet", "r50", "tiny-test"])
def test_every_shipped_config_loads_by_name(name):
    cfg = load_config(name)
    assert cfg.source_path == str((ROOT / "configs" / f"{name}.yaml").resolve())
