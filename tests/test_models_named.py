"""Named models (--model NAME): download from a real HTTP server on 127.0.0.1, import once, reuse.

The served folder is a tiny random transformers Mask2Former (config.json + model.safetensors)
built here. Plain-HTTP entries come from a $STREAMSEG_MODELS file; the hub entry
mask2former-swin-t-coco is fetched by huggingface_hub itself with HF_ENDPOINT pointed at the
same server (it makes HEAD and GET requests to /{repo}/resolve/{revision}/{file}).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from cli_helpers import one_line_error
from model_server import ModelServer
from test_weights_import import TINY, hf_model

ROOT = Path(__file__).resolve().parent.parent
HUB_REPO = "facebook/mask2former-swin-tiny-coco-instance"
LOW = ["--set", "tracker.birth_threshold=0.05", "--set", "tracker.keep_threshold=0.02"]
SMALL = ("--set", "model.input_short_side=128")  # the hub entry imports at 480: keep the runs quick
SOURCE = "synthetic://?seed=1&fps=0&width=160&height=128&instances=3"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("hf")
    hf_model(TINY, small=True, seed=5).save_pretrained(tmp)
    return {name: (tmp / name).read_bytes() for name in ("config.json", "model.safetensors")}


def url_registry(path: Path, base: str, files: dict[str, bytes], sha: dict[str, str] | None = None) -> Path:
    """A $STREAMSEG_MODELS file with one plain-HTTP model, 'tiny-url'."""
    sha = sha or {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}
    entry = {"name": "tiny-url", "kind": "url", "description": "test model", "short_side": 128,
             "files": [{"names": [n], "url": f"{base}/m/{n}", "sha256": sha[n]} for n in files]}
    path.write_text(json.dumps({"models": [entry]}))  # JSON is YAML
    return path


def cli(tmp: Path, *args: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "STREAMSEG_CACHE": str(tmp / "cache"), **env}
    return subprocess.run([sys.executable, "-m", "streamseg", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=timeout)


def run_frames(tmp: Path, model: str, *extra: str, **env: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    rle = tmp / f"out-{len(list(tmp.glob('out-*')))}.jsonl"
    r = cli(tmp, "run", "--model", model, "--source", SOURCE, "--max-frames", "3", "--quiet",
            "--publish", "ipc://" + str(tmp / "pub.sock"), "--save-rle", str(rle), *LOW, *extra, **env)
    lines = [json.loads(x) for x in rle.read_text().splitlines()] if rle.is_file() else []
    return r, lines


def model_dir(tmp: Path, name: str) -> Path:
    return tmp / "cache" / "models" / name


def test_url_model_downloads_imports_runs_then_reuses_without_server(tmp_path: Path, folder) -> None:
    with ModelServer({f"/m/{n}": b for n, b in folder.items()}) as srv:
        reg = url_registry(tmp_path / "models.yaml", srv.url, folder)
        listed = cli(tmp_path, "models", "--json", STREAMSEG_MODELS=str(reg))
        assert {"name": "tiny-url", "cached": False}.items() <= json.loads(listed.stdout.splitlines()[-1]).items()
        r, lines = run_frames(tmp_path, "tiny-url", STREAMSEG_MODELS=str(reg))
        assert r.returncode == 0, r.stderr
        assert "model tiny-url: downloaded and imported" in r.stderr
        assert sorted(srv.requests) == ["GET /m/config.json", "GET /m/model.safetensors"]
    ckpt = model_dir(tmp_path, "tiny-url") / "tiny-url.pt"
    assert ckpt.is_file() and sorted(p.name for p in model_dir(tmp_path, "tiny-url").iterdir()) == ["tiny-url.pt"]
    assert lines and {x["frame_index"] for x in lines} <= {0, 1, 2}
    assert all(x["label"].startswith("class") for x in lines)  # the checkpoint's own classes
    # server gone: the cached import is used, nothing is fetched
    again, lines2 = run_frames(tmp_path, "tiny-url", STREAMSEG_MODELS=str(reg))
    assert again.returncode == 0, again.stderr
    assert "downloaded" not in again.stderr
    assert [(x["frame_index"], x["id"], x["mask_box"]) for x in lines2] == \
        [(x["frame_index"], x["id"], x["mask_box"]) for x in lines]
    listed = cli(tmp_path, "models", "--json", STREAMSEG_MODELS=str(reg))
    assert json.loads(listed.stdout.splitlines()[-1])["cached"] is True


@pytest.mark.parametrize("fault", ["hash", "truncated"])
def test_corrupt_or_truncated_download_is_refused_and_not_cached(tmp_path: Path, folder, fault: str) -> None:
    with ModelServer({f"/m/{n}": b for n, b in folder.items()}) as srv:
        sha = {n: hashlib.sha256(b).hexdigest() for n, b in folder.items()}
        if fault == "hash":
            sha["model.safetensors"] = hashlib.sha256(b"something else").hexdigest()
        else:
            srv.truncate.add("/m/model.safetensors")
        reg = url_registry(tmp_path / "models.yaml", srv.url, folder, sha)
        r, _ = run_frames(tmp_path, "tiny-url", STREAMSEG_MODELS=str(reg))
    line = one_line_error(r, "cannot download model tiny-url", "/m/model.safetensors",
                          "sha256 mismatch" if fault == "hash" else "truncated", "weights import")
    assert "--checkpoint" in line
    left = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert left == []  # no partial file, no import


def test_dead_url_gives_the_one_line_error(tmp_path: Path, folder, free_port: int) -> None:
    reg = url_registry(tmp_path / "models.yaml", f"http://127.0.0.1:{free_port}", folder)
    r, _ = run_frames(tmp_path, "tiny-url", STREAMSEG_MODELS=str(reg))
    one_line_error(r, f"http://127.0.0.1:{free_port}/m/config.json", "refused", "weights import")


def hub_files(folder: dict[str, bytes]) -> dict[str, bytes]:
    return {f"/{HUB_REPO}/resolve/main/{n}": b for n, b in folder.items()}


HUB_ENV = {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1"}


def test_hub_file_not_matching_its_etag_is_refused_and_not_cached(tmp_path: Path, folder) -> None:
    with ModelServer(hub_files(folder)) as srv:
        srv.corrupt.add(f"/{HUB_REPO}/resolve/main/model.safetensors")  # bytes differ from the ETag
        r, _ = run_frames(tmp_path, "mask2former-swin-t-coco", HF_ENDPOINT=srv.url, **HUB_ENV)
        assert f"GET /{HUB_REPO}/resolve/main/model.safetensors" in srv.requests
    assert r.returncode == 2 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]  # (huggingface_hub may draw its progress bar before)
    assert last.startswith("streamseg: error: cannot download model mask2former-swin-t-coco")
    assert "sha256 mismatch" in last and "weights import" in last
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


@pytest.mark.slow
def test_hub_model_through_huggingface_hub_with_hf_endpoint(tmp_path: Path, folder) -> None:
    env = {**HUB_ENV}
    with ModelServer(hub_files(folder)) as srv:
        r, lines = run_frames(tmp_path, "mask2former-swin-t-coco", *SMALL, HF_ENDPOINT=srv.url, **env)
        assert r.returncode == 0, r.stderr
        assert f"GET /{HUB_REPO}/resolve/main/model.safetensors" in srv.requests
        assert not any("pytorch_model.bin" in x for x in srv.requests)  # safetensors found first
    assert (model_dir(tmp_path, "mask2former-swin-t-coco") / "mask2former-swin-t-coco.pt").is_file()
    assert lines
    again, _ = run_frames(tmp_path, "mask2former-swin-t-coco", *SMALL, HF_ENDPOINT=srv.url, **env)  # server gone
    assert again.returncode == 0 and "downloaded" not in again.stderr, again.stderr


@pytest.mark.slow
def test_hub_falls_back_to_pytorch_model_bin(tmp_path: Path, folder) -> None:
    import io

    import torch
    from safetensors.torch import load

    buf = io.BytesIO()
    torch.save(load(folder["model.safetensors"]), buf)
    files = {"config.json": folder["config.json"], "pytorch_model.bin": buf.getvalue()}
    env = {"HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1"}
    with ModelServer(hub_files(files)) as srv:
        r = cli(tmp_path, "bench", "model", "--model", "mask2former-swin-t-coco", "--frames", "1",
                "--sizes", "160x128", "--json", HF_ENDPOINT=srv.url, **env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["config"].endswith("mask2former-swin-t-coco.pt")


def test_offline_and_dead_hub_fail_fast_with_one_line(tmp_path: Path, free_port: int) -> None:
    offline = cli(tmp_path, "run", "--model", "mask2former-swin-t-coco", "--source", SOURCE, "--max-frames", "1",
                  timeout=60, HF_HUB_OFFLINE="1")
    one_line_error(offline, "cannot download model mask2former-swin-t-coco", "config.json", "weights import")
    dead = cli(tmp_path, "run", "--model", "mask2former-swin-t-coco", "--source", SOURCE, "--max-frames", "1",
               timeout=60, HF_HUB_OFFLINE="0", HF_ENDPOINT=f"http://127.0.0.1:{free_port}")
    one_line_error(dead, f"http://127.0.0.1:{free_port}/{HUB_REPO}/resolve/main/config.json", "weights import")


def test_model_name_errors(tmp_path: Path) -> None:
    one_line_error(cli(tmp_path, "run", "--model", "mask2former-swin-t-cocoo", "--source", SOURCE),
                   "unknown model 'mask2former-swin-t-cocoo'", "mask2former-swin-t-coco")
    one_line_error(cli(tmp_path, "run", "--model", "cpu-mobilenet-synth", "--checkpoint", "x.pt",
                       "--source", SOURCE), "--model and --checkpoint")


@pytest.mark.slow
def test_shipped_model_by_name_downloads_nothing(tmp_path: Path) -> None:
    shipped = cli(tmp_path, "run", "--model", "cpu-mobilenet-synth", "--source", SOURCE, "--max-frames", "2",
                  "--quiet", "--publish", "ipc://" + str(tmp_path / "p.sock"))
    assert shipped.returncode == 0, shipped.stderr
    # the shipped model downloads nothing (the cache holds only its exported ONNX graphs)
    assert not (tmp_path / "cache" / "models").exists()
    assert {p.parent.name for p in (tmp_path / "cache").rglob("*") if p.is_file()} <= {"onnx"}


def _tiny_d2_ytvis19() -> dict:
    """A tiny random detectron2 Swin Mask2Former state dict with YouTube-VIS 2019's 40 classes."""
    from d2_helpers import d2_from_hf_swin
    from test_weights_import_detectron2 import hf_swin

    from streamseg.weights_import.class_names import YTVIS19

    return d2_from_hf_swin(hf_swin(TINY, num_labels=len(YTVIS19)))


def _check_imported_ytvis19(tmp: Path, name: str, r: subprocess.CompletedProcess, lines: list[dict],
                            short_side: int) -> None:
    """The named model was downloaded, imported with YouTube-VIS 2019's names and the entry's
    short side, runs with the match tracker, and published only those names."""
    from streamseg.predictor.checkpoint import checkpoint_config, checkpoint_vocabulary, load_checkpoint
    from streamseg.weights_import.class_names import YTVIS19

    assert f"model {name}: downloaded and imported" in r.stderr
    assert {x["label"] for x in lines} <= set(YTVIS19)
    data = load_checkpoint(model_dir(tmp, name) / f"{name}.pt")
    assert list(checkpoint_vocabulary(data, name).names) == list(YTVIS19)  # the entry's dataset
    cfg = checkpoint_config(data)
    assert cfg.tracker.mode == "match" and cfg.model.input_short_side == short_side


def test_detectron2_url_model_downloads_imports_and_runs(tmp_path: Path) -> None:
    """A url entry of format detectron2 (as the built-in mask2former-r50-coco): the .pkl is
    fetched, imported through the restricted unpickler with the entry's class names, and run."""
    from d2_helpers import write_pkl

    pkl = write_pkl(_tiny_d2_ytvis19(), tmp_path / "model_final.pkl")
    data = pkl.read_bytes()
    entry = {"name": "tiny-d2", "kind": "url", "format": "detectron2", "classes": "ytvis19", "short_side": 128,
             "files": [{"names": ["model_final.pkl"], "url": "", "sha256": hashlib.sha256(data).hexdigest()}]}
    with ModelServer({"/d2/model_final.pkl": data}) as srv:
        entry["files"][0]["url"] = f"{srv.url}/d2/model_final.pkl"
        reg = tmp_path / "models.yaml"
        reg.write_text(json.dumps({"models": [entry]}))
        r, lines = run_frames(tmp_path, "tiny-d2", STREAMSEG_MODELS=str(reg))
        assert r.returncode == 0, r.stderr
        assert srv.requests == ["GET /d2/model_final.pkl"]
    _check_imported_ytvis19(tmp_path, "tiny-d2", r, lines, short_side=128)


def test_builtin_r50_entry_is_the_detectron2_release() -> None:
    from streamseg.models.registry import Registry

    e = Registry.default().get("mask2former-r50-coco")
    assert e.format == "detectron2" and e.classes == "coco" and e.kind == "url"
    assert e.files[0].url.endswith("maskformer2_R50_bs16_50ep/model_final_3c8ec9.pkl")


def test_minvis_hub_entry_fetches_the_detectron2_pth_and_runs_it(tmp_path: Path) -> None:
    """The built-in minvis-r50-ytvis19 entry as huggingface_hub fetches it (HF_ENDPOINT on
    127.0.0.1): a detectron2 .pth (torch.load weights_only), imported with YouTube-VIS 2019's 40
    names, run online with the match tracker. The served network is a tiny random D2 Swin, not
    MinVIS's R50: the importer infers the architecture from the tensors, so the entry is what
    is tested here."""
    from d2_helpers import write_pth

    from streamseg.models.registry import Registry

    entry = Registry.default().get("minvis-r50-ytvis19")
    assert (entry.kind, entry.format, entry.classes, entry.repo_id) == (
        "hub", "detectron2", "ytvis19", "deahuang/MinVIS-Model-Zoo")
    pth = write_pth(_tiny_d2_ytvis19(), tmp_path / "m.pth")
    served = {"/deahuang/MinVIS-Model-Zoo/resolve/main/minvis_ytvis19_R50.pth": pth.read_bytes()}
    with ModelServer(served) as srv:
        r, lines = run_frames(tmp_path, "minvis-r50-ytvis19", *SMALL, HF_ENDPOINT=srv.url, **HUB_ENV)
        assert r.returncode == 0, r.stderr
        assert "GET /deahuang/MinVIS-Model-Zoo/resolve/main/minvis_ytvis19_R50.pth" in srv.requests
    _check_imported_ytvis19(tmp_path, "minvis-r50-ytvis19", r, lines, short_side=360)  # the zoo's test size
    for dataset in ("ytvis21", "ovis"):
        other = Registry.default().get(f"minvis-r50-{dataset}")
        assert other.files[0].names == (f"minvis_{dataset}_R50.pth",) and other.classes == dataset
