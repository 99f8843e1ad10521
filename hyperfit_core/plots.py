"""Plots drawn from a run dir's own files: loss.png from metrics.jsonl (written at the end of training, and
redrawable from any run dir later); save_png, how every figure of the packages is written."""

from __future__ import annotations

from pathlib import Path

from hyperfit_core.atomic import atomic_path
from hyperfit_core.formats import read_jsonl


def save_png(fig, path: Path, dpi: int = 110) -> Path:
    """Write a matplotlib figure to `path` atomically (temp + rename) and close it, also when writing fails."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)  # tmp has no .png suffix, so name the format
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return Path(path)


def write_loss_plot(metrics_path: Path, out: Path) -> Path | None:
    """loss.png: every step's loss and each epoch's mean, log scale."""
    if not metrics_path.is_file():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_jsonl(metrics_path)
    steps = [(r["step"], r["loss"]) for r in records if r.get("event") == "step" and r.get("loss", 0) > 0]
    epochs = [(r["step"], r["mean_loss"]) for r in records if r.get("event") == "epoch" and r.get("mean_loss", 0) > 0]
    if not steps:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(*zip(*steps), lw=0.8, alpha=0.6, label="step loss")
    if epochs:
        ax.plot(*zip(*epochs), "o-", ms=3, label="epoch mean")
    ax.set_yscale("log")
    ax.set_xlabel("update step")
    ax.set_ylabel("training loss")
    ax.legend()
    fig.tight_layout()
    return save_png(fig, out, dpi=100)
