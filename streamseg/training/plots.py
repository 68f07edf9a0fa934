"""PNG plots of a training run (matplotlib, headless): each loss term per step, held-out AP per
evaluation when the log has any. Written next to the log so a run folder explains itself.

``plot_run`` draws in a child process: matplotlib's font library aborts the whole interpreter
when imported into a process that has already loaded PyAV's and GStreamer's native libraries
(seen here: SIGABRT in ft2font), and a plot must never cost a training run its checkpoints."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def read_log(path: str | Path) -> list[dict]:
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a killed run
        if isinstance(rec, dict):
            records.append(rec)
    return records


def write_plots(log_path: str | Path, out_dir: str | Path, terms: tuple[str, ...]) -> list[Path]:
    """losses.png (one panel per term, log scale) and, if the log holds "eval" records, ap.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    steps = [r for r in records if "step" in r and "total" in r]
    written: list[Path] = []
    out = Path(out_dir)
    if steps:
        present = [k for k in terms if any(k in r for r in steps)]
        fig, axes = plt.subplots(len(present), 1, figsize=(7, 1.8 * len(present)), sharex=True, squeeze=False)
        for ax, key in zip(axes[:, 0], present):
            xs = [r["step"] for r in steps if key in r]
            ys = [r[key] for r in steps if key in r]
            ax.plot(xs, ys, lw=1)
            ax.set_ylabel(key)
            if min(ys) > 0:
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("step")
        fig.tight_layout()
        written.append(out / "losses.png")
        fig.savefig(written[-1], dpi=80)
        plt.close(fig)
    evals = [r for r in records if r.get("event") == "eval" and "AP" in r]
    if evals:
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.plot([r["step"] for r in evals], [r["AP"] for r in evals], marker="o")
        ax.set_xlabel("step")
        ax.set_ylabel("held-out AP")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        written.append(out / "ap.png")
        fig.savefig(written[-1], dpi=80)
        plt.close(fig)
    return written


def plot_run(log_path: str | Path, out_dir: str | Path, terms: tuple[str, ...]) -> bool:
    """write_plots in a child process; False (and a one-line notice) if it failed."""
    cmd = [sys.executable, "-m", "streamseg.training.plots", str(log_path), str(out_dir), ",".join(terms)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"train: no plots ({exc})", file=sys.stderr)
        return False
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["exit code %d" % proc.returncode])[-1]
        print(f"train: no plots ({last})", file=sys.stderr)
        return False
    return True


if __name__ == "__main__":
    write_plots(sys.argv[1], sys.argv[2], tuple(sys.argv[3].split(",")))
