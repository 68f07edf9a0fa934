"""The restricted unpickler for detectron2 .pkl files: numpy arrays load, anything else is refused
before it runs."""
from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from streamseg.errors import CheckpointError
from streamseg.weights_import.safe_pickle import load_numpy_pickle


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_dict_of_numpy_arrays_loads(tmp_path: Path, protocol: int) -> None:
    rng = np.random.default_rng(0)
    data = {"model": OrderedDict([("backbone.res2.0.conv1.weight", rng.standard_normal((4, 3, 1, 1)).astype(np.float32)),
                                  ("sem_seg_head.predictor.query_feat.weight", rng.standard_normal((5, 8)))]),
            "__author__": "someone", "matching_heuristics": True, "iteration": np.int64(7)}
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    loaded = load_numpy_pickle(path)
    for k, v in data["model"].items():
        assert np.array_equal(loaded["model"][k], v) and loaded["model"][k].dtype == v.dtype
    assert loaded["__author__"] == "someone" and loaded["iteration"] == 7


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"model": {"w": np.zeros(2)}, "x": _Evil(str(marker))}))
    with pytest.raises(CheckpointError) as info:
        load_numpy_pickle(path)
    assert "refused" in str(info.value) and "system" in str(info.value)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_garbage_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(CheckpointError, match="not a readable pickle"):
        load_numpy_pickle(path)
