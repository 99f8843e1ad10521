"""Small helpers for the paper's data-influence experiments (scripts/data_influence.py): how the hyperfitting data's
order, quantity and type shape the result.

- `mean_sd` / `aggregate`: mean and sample standard deviation of a metric over seeds (or orders);
- `pairwise_agreement`: top-1 agreement of every pair of models from their `prediction_stats` top-1 tokens
  (prediction_stats runs once per model instead of twice per pair, as `top1_agreement` would);
- `epochs_for_steps`: how many epochs a run over N items needs so that `max_steps` update steps fit (the
  quantity sweep keeps the number of updates constant while N changes);
- `plot_series` / `plot_matrix`: the experiments' figures.
"""

from __future__ import annotations

import math
import os
import statistics
from itertools import combinations

import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_core.plots import save_png


def mean_sd(values) -> dict:
    """{"mean", "sd" (sample, None for one value), "n", "values"} of the finite numbers in `values` (None and
    NaN are skipped; all missing gives mean None)."""
    kept = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return {"mean": statistics.fmean(kept) if kept else None,
            "sd": statistics.stdev(kept) if len(kept) >= 2 else None, "n": len(kept), "values": kept}


def aggregate(records: list[dict], keys) -> dict:
    """{key: mean_sd over the records' values of key} (a record without the key counts as missing)."""
    return {key: mean_sd([record.get(key) for record in records]) for key in keys}


def pairwise_agreement(top1: dict[str, torch.Tensor]) -> list[dict]:
    """For every pair of named top-1 token tensors of the same shape (the same held-out positions), the
    fraction of positions where both predict the same token: [{"a", "b", "agreement"}] in input order."""
    if len(top1) < 2:
        raise HyperfitError("top-1 agreement needs at least two models")
    shapes = {tuple(t.shape) for t in top1.values()}
    if len(shapes) != 1:
        raise HyperfitError(f"the models were scored on different positions: shapes {sorted(shapes)}")
    return [{"a": a, "b": b, "agreement": float((top1[a] == top1[b]).double().mean())}
            for a, b in combinations(top1, 2)]


def epochs_for_steps(num_items: int, batch_size: int, steps: int) -> int:
    """The fewest epochs over `num_items` items in batches of `batch_size` (the last one may be short) that
    hold `steps` update steps; pair with max_steps=steps so every size gets exactly that many updates."""
    if num_items < 1 or batch_size < 1 or steps < 1:
        raise HyperfitError(f"items, batch size and steps must be at least 1, got {num_items}, {batch_size}, {steps}")
    return math.ceil(steps / math.ceil(num_items / batch_size))


def _save(fig, path) -> None:
    save_png(fig, path, dpi=110)


def plot_series(panels: dict[str, dict[str, dict]], path: str | os.PathLike, xlabel: str, logx: bool = False,
                title: str = "") -> None:
    """One panel per metric; `panels[metric][series] = {x: mean_sd}`: a line with sd error bars per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not panels:
        raise HyperfitError("nothing to plot")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (metric, series) in zip(axes[0], panels.items()):
        for name, points in series.items():
            xs = sorted(points, key=float)
            means = [points[x]["mean"] if points[x]["mean"] is not None else float("nan") for x in xs]
            sds = [points[x]["sd"] or 0.0 for x in xs]
            ax.errorbar([float(x) for x in xs], means, yerr=sds, marker="o", ms=3, capsize=2, label=name)
        ax.set(xlabel=xlabel, title=metric)
        if logx:
            ax.set_xscale("log", base=2)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def plot_matrix(matrices: dict[str, list[list[float]]], rows: list[str], cols: list[str],
                path: str | os.PathLike, row_label: str = "", col_label: str = "") -> None:
    """One annotated heat map per metric, rows x cols (e.g. hyperfitting corpus x evaluation corpus)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not matrices:
        raise HyperfitError("nothing to plot")
    fig, axes = plt.subplots(1, len(matrices), figsize=(3.6 * len(matrices), 3.2), squeeze=False)
    for ax, (metric, values) in zip(axes[0], matrices.items()):
        grid = torch.tensor([[float("nan") if v is None else v for v in row] for row in values])
        ax.imshow(grid.numpy(), cmap="viridis")
        for i in range(len(rows)):
            for j in range(len(cols)):
                ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", color="w", fontsize=8)
        ax.set_xticks(range(len(cols)), cols, fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set(title=metric, xlabel=col_label, ylabel=row_label)
    fig.tight_layout()
    _save(fig, path)


__all__ = ["mean_sd", "aggregate", "pairwise_agreement", "epochs_for_steps", "plot_series", "plot_matrix"]
