"""Plots drawn from a run dir's own files: loss.png from metrics.jsonl (written at the end of training, and
redrawable from any run dir later); save_png, how every figure of the packages is written; png_target, the
check of a PNG path a user names."""

from __future__ import annotations

from pathlib import Path

from hyperfit_core.atomic import atomic_path
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import read_jsonl


def png_target(path: str | Path) -> Path:
    """`path` as a place for a PNG, checked before any work: a name ending in .png (a slip such as `--out
    summary.json` would otherwise replace that file with an image), not a folder, in a folder that exists."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise HyperfitError(f"{path} is where a PNG would be written: name a .png file")
    if path.is_dir():
        raise HyperfitError(f"{path} is a folder: name a .png file")
    if not path.parent.is_dir():
        raise HyperfitError(f"the folder of {path} does not exist")
    return path


def save_png(fig, path: Path, dpi: int = 110) -> Path:
    """Write a matplotlib figure to `path` atomically (temp + rename) and close it, also when writing fails."""
    try:
        png_target(path)
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
