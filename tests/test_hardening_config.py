"""Bad configs, overrides and generated-source sizes end in one-line errors (issue 10, item 6).

Real `streamseg run` subprocesses; the ground-truth segmenter keeps them model-free and fast.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_helpers import one_line_error as _one_line_error
from engine_helpers import run_cli

from streamseg.config import load_config
from streamseg.errors import ConfigError, SourceError
from streamseg.sources.base import SourceOptions
from streamseg.sources.synthetic import SyntheticSource


def _run(free_port, *args):
    return run_cli("run", "--segmenter", "ground-truth", "--quiet",
                   "--publish", f"tcp://127.0.0.1:{free_port}", *args, timeout=30)


def test_config_file_not_utf8(free_port, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("engine:\n  publish: caf\xe9\n".encode("latin-1"))
    _one_line_error(_run(free_port, "--config", str(path), "--source", "synthetic://"), str(path), "UTF-8")


def test_deeply_nested_yaml(free_port, tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 20000 + "]" * 20000 + "\n")
    _one_line_error(_run(free_port, "--config", str(path), "--source", "synthetic://"), str(path))


def test_a_key_given_twice_is_refused_not_silently_overridden(free_port, tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("postprocess:\n  min_piece_ratio: 1.0\n  target_continuity: 1\n"
                    "  min_piece_ratio: 0.5\ntracker:\n  mode: propagate\n")
    _one_line_error(_run(free_port, "--config", str(path), "--source", "synthetic://"), str(path),
                    "'min_piece_ratio' twice", "line 4")
    # the same name in two sections, and YAML merge keys overriding what they merge, stay valid
    ok = tmp_path / "ok.yaml"
    ok.write_text("source:\n  <<: {realtime: true}\n  realtime: false\ntracker:\n  mode: propagate\n"
                  "postprocess:\n  mode: argmax\n")
    assert load_config(ok).source.realtime is False


@pytest.mark.parametrize("override, needle", [
    ("engine.status_hz=[1,", "not valid YAML"),
    ("x=!!python/object/apply:os.system ['true']", "unsupported YAML tag"),
    ("engine.send_hwm=99999999999999999999", "engine.send_hwm"),
    ("engine.send_hwm=4294967296", "engine.send_hwm"),
    ("engine.status_hz=" + "[" * 5000, "engine.status_hz"),
])
def test_bad_override_is_one_line(free_port, override, needle):
    _one_line_error(_run(free_port, "--source", "synthetic://", "--set", override), needle)


def test_python_tag_is_never_executed(free_port, tmp_path):
    marker = tmp_path / "pwned"
    override = f"x=!!python/object/apply:os.system ['touch {marker}']"
    _one_line_error(_run(free_port, "--source", "synthetic://", "--set", override), "unsupported YAML tag")
    assert not marker.exists()


def test_oversized_ints_fail_config_validation_before_anything_is_built():
    with pytest.raises(ConfigError, match="engine.send_hwm"):
        load_config(overrides=["engine.send_hwm=99999999999999999999"])
    with pytest.raises(ConfigError, match="engine.send_hwm"):
        load_config(overrides=[f"engine.send_hwm={2**31}"])
    assert load_config(overrides=[f"engine.send_hwm={2**31 - 1}"]).engine.send_hwm == 2**31 - 1


def test_huge_synthetic_frame_is_refused(free_port):
    _one_line_error(_run(free_port, "--source", "synthetic://?width=100000&height=100000"), "8192", "100000x100000")


def test_synthetic_size_bound_is_inclusive():
    src = SyntheticSource("synthetic://?width=8192&height=16&frames=1", SourceOptions())
    assert (src.scene_config.width, src.scene_config.height) == (8192, 16)
    with pytest.raises(SourceError, match="8192"):
        SyntheticSource("synthetic://?width=16&height=8193", SourceOptions())
    with pytest.raises(SourceError, match="finite"):
        SyntheticSource("synthetic://?fps=inf", SourceOptions())


def test_shipped_configs_still_load():
    from streamseg.config import packaged_configs
    for name in packaged_configs():
        assert load_config(name).source_path == str((Path(__file__).parent.parent / "configs" / f"{name}.yaml").resolve())


@pytest.mark.parametrize("overrides, needle", [
    (["model.fpn_refine=-1"], "fpn_refine must be in [0, 8]"),
    (["model.pixel_decoder=deformable", "model.fpn_refine=1"], "fpn_refine needs pixel_decoder: fpn"),
    (["model.mask_stride=8"], "mask_stride must be 2 or 4"),
    (["model.backbone=resnet50", "model.mask_stride=2"], "mask_stride 2 needs pixel_decoder: fpn and backbone: mobilenet_v2"),
    (["model.pixel_decoder=deformable", "model.mask_stride=2"], "mask_stride 2 needs pixel_decoder: fpn"),
])
def test_fpn_refine_is_validated(overrides, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        load_config(overrides=overrides)
