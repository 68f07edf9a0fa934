"""PNG plots of a training run (matplotlib, headless): each loss term per step, held-out AP per
evaluation when the log has any. Written next to the log so a run folder explains itself."""
from __future__ import annotations

import json
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
