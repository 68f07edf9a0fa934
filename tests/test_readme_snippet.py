"""The README's Python snippet runs as written from a folder outside the checkout."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from streamseg.config import load_config
from streamseg.data.synthetic_scene import SYNTHETIC_CLASSES

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_snippet_runs_from_any_folder(tmp_path):
    snippet = re.search(r"## Python API\n\n```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert snippet is not None
    (tmp_path / "snippet.py").write_text(snippet.group(1))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [line.split(" ", 4) for line in out.stdout.splitlines()]
    assert rows and {int(r[0]) for r in rows} <= set(range(20)) and int(rows[-1][0]) == 19
    names = load_config("cpu-mobilenet").vocabulary.names or list(SYNTHETIC_CLASSES)
    assert all(r[2] in names or r[2] in SYNTHETIC_CLASSES for r in rows)  # labels from the vocabulary
