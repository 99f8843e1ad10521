"""Plots drawn from a run dir's own files: loss.png from metrics.jsonl (written at the end of training, and
redrawable from any run dir later)."""

from __future__ import annotations

from pathlib import Path

from hyperfit_core.atomic import atomic_path
from hyperfit_core.formats import read_jsonl


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
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out
