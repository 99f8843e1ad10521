"""Diversity as continuations grow: TTR, seq-rep-n and Self-BLEU of the first L generated tokens, for growing L.

The paper's claim is about LONG continuations (its headline TTR is over the last 96 of 256 tokens); one number
per run hides where greedy decoding starts to loop. Each point uses the first L tokens of every continuation.
"""

from __future__ import annotations

import os

import torch

from hyperfit_core import metric_registry as registry
from hyperfit_core import metrics
from hyperfit_core.errors import HyperfitError
from hyperfit_core.plots import save_png

DEFAULT_LENGTHS = (32, 64, 96, 128, 192, 256)


def length_curve(generated: torch.Tensor, lengths=DEFAULT_LENGTHS, rep_n: int = 4, bleu_order: int = 4) -> dict:
    """{L: {"type_token_ratio", "seq_rep_<n>", "self_bleu<order>"}} for every L in `lengths` up to the generated length (and that
    length itself when it is not listed)."""
    generated = torch.as_tensor(generated)
    if generated.ndim != 2 or len(generated) < 2:
        raise HyperfitError("a length curve needs at least two continuations (Self-BLEU compares them)")
    full = generated.shape[1]
    points = sorted({length for length in lengths if 0 < length <= full} | {full})
    curve = {}
    for length in points:
        prefix = generated[:, :length]
        curve[length] = {registry.key("type_token_ratio"): metrics.mean_type_token_ratio(prefix),
                         registry.key("seq_rep_{n}", n=rep_n): metrics.mean_seq_rep_n(prefix, rep_n)
                         if length >= rep_n else None,
                         registry.key("self_bleu{order}", order=bleu_order): metrics.self_bleu(prefix, bleu_order)}
    return curve


def plot_length_curves(curves: dict[str, dict], path: str | os.PathLike, title: str = "") -> None:
    """One panel per metric, one line per condition (x: continuation length in tokens)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curves:
        raise HyperfitError("no length curves to plot")
    keys = list(next(iter(curves.values())).values())[0].keys()
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.4))
    for ax, key in zip(axes, keys):
        for name, curve in curves.items():
            xs = [int(x) for x in curve]
            ys = [point[key] for point in curve.values()]
            ax.plot(xs, [y if y is not None else float("nan") for y in ys], marker="o", ms=3, label=name)
        ax.set(xlabel="first L generated tokens", title=registry.label_of(key))
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
