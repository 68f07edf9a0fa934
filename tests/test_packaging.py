"""`pip install .` outside the checkout: the wheel holds the shipped configs and weights, and an
installed copy runs the default model, `config show` and `bench model` from a folder that is not the
checkout.

The wheel is built from a copy of the package sources (so the build leaves nothing in the checkout)
with pip and the venv's setuptools, offline. A fresh venv gets the wheel with ``--no-deps``; its
dependencies (torch alone is several GB) come from the project venv's site-packages: exactly the
distributions the wheel's Requires-Dist needs (no extras), followed through their own requirements,
linked in file by top-level entry. So the editable install of the checkout is invisible there (the
test asserts where ``streamseg`` is imported from), and so are the optional packages: PyGObject,
sentence-transformers, the MobileNetV2 weight package, pytest."""
from __future__ import annotations

import email
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pycocotools import mask as coco_mask

from streamseg.config import packaged_configs
from streamseg.data.synthetic_scene import SYNTHETIC_CLASSES
from streamseg.sources.base import SourceOptions
from streamseg.sources.synthetic import SyntheticSource

ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("streamseg", "setup.cfg", "pyproject.toml", "README.md")  # all setup.cfg reads


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "-w", str(dist), str(src)], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    wheels = list(dist.glob("streamseg-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_holds_the_shipped_configs_the_weights_they_name_and_the_console_script(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        configs = sorted(n for n in names if n.startswith("streamseg/configs/"))
        assert configs == [f"streamseg/configs/{c}.yaml" for c in packaged_configs()]
        assert {"cpu-mobilenet", "r50", "tiny-test"} <= set(packaged_configs())
        named = 0
        for path in configs:
            checkpoint = yaml.safe_load(z.read(path)).get("checkpoint")
            if checkpoint:  # relative to the config file, as load_config resolves it
                assert posixpath.normpath(posixpath.join(posixpath.dirname(path), checkpoint)) in names, path
                named += 1
        assert named >= 1  # the default model's config names the shipped weights
        weights = z.getinfo("streamseg/weights/cpu-mobilenet-synth.pt")
        assert weights.file_size == (ROOT / "streamseg/weights/cpu-mobilenet-synth.pt").stat().st_size
        assert "streamseg/kernels/__init__.py" in names and "streamseg/cli.py" in names
        assert not [n for n in names if n.startswith(("tests/", "kernels/")) or "__pycache__" in n]
        entry_points = next(z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert re.search(r"^streamseg = streamseg\.cli:main$", entry_points, re.M)


def _requires_dist(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(z.read(meta)).get_all("Requires-Dist") or []


def _installed_top_levels(requirements: list[str], site: Path) -> set[str]:
    """The site-packages entries (packages, modules, dist-info) of everything ``requirements`` pull in,
    extras of the top level left out, extras named in a requirement (``cuda-toolkit[cublas]``) followed."""
    todo, seen, entries = [(r, "") for r in requirements], set(), set()
    while todo:
        text, extra = todo.pop()
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = metadata.distribution(req.name)  # PackageNotFoundError: the project venv lacks a dependency
        entries |= {f.parts[0] for f in dist.files or [] if f.parts[0] != ".."}
        todo += [(r, e) for r in dist.requires or [] for e in ("", *req.extras)]
    return {e for e in entries if (site / e).exists()}


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(fresh venv, environment without the checkout) with the wheel installed."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    deps = venv.parent / "deps"
    deps.mkdir()
    project_site = Path(sysconfig.get_paths()["purelib"]).resolve()
    for name in _installed_top_levels(_requires_dist(wheel), project_site):
        (deps / name).symlink_to(project_site / name)
    python = venv / "bin" / "python"
    fresh_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    (Path(fresh_site) / "project-deps.pth").write_text(f"{deps}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # a cache of its own: text embeddings cached by other runs on this machine would hide what
    # the fresh install lacks
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", STREAMSEG_CACHE=str(venv.parent / "cache"),
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                           "--no-index", str(wheel)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return venv, env


def _in_fresh(installed, tmp_path, *command: str, timeout: float = 180) -> subprocess.CompletedProcess:
    venv, env = installed
    return subprocess.run([str(venv / "bin" / command[0]), *command[1:]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_installed_package_is_the_wheel_not_the_checkout(installed, tmp_path):
    proc = _in_fresh(installed, tmp_path, "python", "-c",
                     "import streamseg.kernels as k, streamseg; print(streamseg.__file__); print(k.__file__)")
    assert proc.returncode == 0, proc.stderr
    venv = installed[0]
    for line in proc.stdout.splitlines():
        assert Path(line).resolve().is_relative_to(venv.resolve()), line


@pytest.mark.slow
def test_installed_run_uses_the_shipped_model_and_finds_the_scene(installed, tmp_path):
    uri = "synthetic://?seed=1&width=320&height=192&fps=0"  # fps=0: every frame, none dropped (frames 0-4)
    proc = _in_fresh(installed, tmp_path, "streamseg", "run", "--source", uri, "--max-frames", "5",
                     "--publish", "inproc://pkg", "--save-rle", "instances.jsonl")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^stream 0 \(synthetic://\S+\): 5 frames in ", proc.stdout, re.M), proc.stdout
    records = [json.loads(line) for line in (tmp_path / "instances.jsonl").read_text().splitlines()]
    by_frame: dict[int, list] = {}
    for r in records:
        by_frame.setdefault(r["frame_index"], []).append(r)
    assert sorted(by_frame) == [0, 1, 2, 3, 4]
    scene = SyntheticSource(uri, SourceOptions()).scene  # the same scene the URI renders
    for index, found in by_frame.items():
        _, truth = scene.render(index)
        best = max(found, key=lambda r: r["score"])
        x, y, w, h = best["mask_box"]
        mask = np.zeros((192, 320), dtype=bool)
        mask[y:y + h, x:x + w] = coco_mask.decode({"size": [h, w], "counts": best["counts"].encode()}).astype(bool)
        ious = {SYNTHETIC_CLASSES[t.class_id]: 0.0 for t in truth}
        for t in truth:
            iou = (mask & t.mask).sum() / max((mask | t.mask).sum(), 1)
            ious[SYNTHETIC_CLASSES[t.class_id]] = max(ious[SYNTHETIC_CLASSES[t.class_id]], iou)
        # an untrained model finds nothing: the shipped weights were found and loaded
        assert ious.get(best["label"], 0.0) >= 0.6, (index, best["label"], ious)


@pytest.mark.slow
def test_installed_config_show_resolves_the_checkpoint_inside_the_package(installed, tmp_path):
    proc = _in_fresh(installed, tmp_path, "streamseg", "config", "show", "--config", "cpu-mobilenet", timeout=60)
    assert proc.returncode == 0, proc.stderr
    values = dict(line.split("  # ", 1)[0].split(" = ", 1) for line in proc.stdout.splitlines())
    assert values["model.backbone"] == "mobilenet_v2" and values["model.num_queries"] == "20"
    checkpoint = Path(values["checkpoint"])
    assert checkpoint.name == "cpu-mobilenet-synth.pt" and checkpoint.is_file()
    assert checkpoint.resolve().is_relative_to(installed[0].resolve())


@pytest.mark.slow
def test_installed_bench_model_runs_the_default_model(installed, tmp_path):
    proc = _in_fresh(installed, tmp_path, "streamseg", "bench", "model", "--frames", "3", "--sizes", "320x192",
                     "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["config"] == "cpu-mobilenet" and report["vocabulary"]["names"] == 5
    size = report["sizes"]["320x192"]
    assert size["frames"] == 3 and size["instances_mean"] > 0 and size["ms_median"]["total"] > 0


@pytest.mark.slow
def test_installed_readme_python_snippet_runs(installed, tmp_path):
    snippet = re.search(r"## Python API\n\n```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert snippet is not None
    (tmp_path / "snippet.py").write_text(snippet.group(1))
    proc = _in_fresh(installed, tmp_path, "python", "snippet.py")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(" ", 4) for line in proc.stdout.splitlines()]
    assert rows and int(rows[-1][0]) == 19 and all(r[2] in SYNTHETIC_CLASSES for r in rows)


@pytest.mark.slow
def test_installed_without_pygobject_a_live_source_falls_back_to_pyav_with_one_notice(installed, tmp_path):
    proc = _in_fresh(installed, tmp_path, "python", "-c", "import gi")
    assert proc.returncode != 0 and "No module named 'gi'" in proc.stderr  # the extra is not installed
    proc = _in_fresh(installed, tmp_path, "streamseg", "run", "--source", "testsrc://?width=64&height=48&fps=10",
                     "--max-frames", "3", "--publish", "inproc://pkg-testsrc")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^stream 0 \(testsrc://\S+\): 3 frames in ", proc.stdout, re.M), proc.stdout
    notices = [line for line in proc.stderr.splitlines() if line.startswith("streamseg: note: GStreamer")]
    assert len(notices) == 1 and "read with PyAV" in notices[0], proc.stderr


@pytest.mark.slow
def test_installed_without_the_minilm_extra_new_names_are_a_one_line_error(installed, tmp_path):
    proc = _in_fresh(installed, tmp_path, "streamseg", "run", "--source", "synthetic://?fps=0&frames=2",
                     "--names", "person,car", "--publish", "inproc://pkg-names")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("streamseg: error: ")]
    assert len(errors) == 1 and "pip install 'streamseg[minilm]'" in errors[0], proc.stderr
