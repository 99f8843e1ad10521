"""Rank reordering vs static reweighting (the follow-up's second control, Li et al. 2026).

Ranks: for each token a generation chose, its rank under another model (the base) in the same context: 0 = the
base's own top-1. Hyperfitting that only reweighted a few tokens would keep most choices at rank 0; a
context-dependent reordering picks tokens from deep in the base's ranking.

Static reweighting: one fixed per-vocabulary-entry logit bias, the mean log-probability shift (hyperfitted minus
base) over held-out positions, added to the base's logits while decoding (`LogitBias`, a LogitsProcessor). If
that reproduced hyperfitted greedy, the effect would be a static reweighting; the follow-up says it does not.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from transformers import LogitsProcessor

from hyperfit_core.atomic import atomic_path
from hyperfit_core.errors import HyperfitError
from hyperfit_core.plots import save_png

LOGIT_BIAS_KEY = "logit_bias"  # the safetensors tensor name of a bias vector
TOP = (1, 5, 50)  # shares of chosen tokens outside the base's top-k


@torch.no_grad()  # on a generator, torch switches grad off around each step only: a `with` block around the
# yield would leave it off in the caller, and two interleaved generators (zip) would restore it in the wrong order
def _positions(model, ids: torch.Tensor, context_len: int, batch_size: int):
    """(batch ids, fp32 logits predicting ids[:, context_len:]) per batch, in eval mode, restored after."""
    if ids.ndim != 2 or not 1 <= context_len < ids.shape[1]:
        raise HyperfitError(f"need (count, length) ids longer than context_len={context_len}, got {tuple(ids.shape)}")
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    device = next(model.parameters()).device
    try:
        for first in range(0, len(ids), batch_size):
            batch = ids[first:first + batch_size].long().to(device)
            yield batch, model(input_ids=batch[:, :-1]).logits[:, context_len - 1:].float()
    finally:
        for module, training in modes:
            module.training = training


def token_ranks(model, ids, context_len: int, batch_size: int = 16) -> torch.Tensor:
    """(count, length - context_len) rank of each ids[:, t >= context_len] under `model` given ids[:, :t]: the
    number of tokens with a strictly larger logit (so the model's own argmax has rank 0)."""
    ids = torch.as_tensor(ids)
    out = []
    for batch, logits in _positions(model, ids, context_len, batch_size):
        target = batch[:, context_len:]
        if int(target.max()) >= logits.shape[-1]:
            raise HyperfitError(f"a generated token id ({int(target.max())}) has no logit: the model predicts "
                                f"only {logits.shape[-1]} classes (another vocabulary?)")
        chosen = logits.gather(-1, target[..., None])
        out.append((logits > chosen).sum(-1).cpu())
    return torch.cat(out)


def rank_edges(num_classes: int) -> list[int]:
    """Histogram bin edges 0, 1, 2, 5, 10, 20, 50, ... (1-2-5 steps), the last one num_classes."""
    edges, scale = [0, 1], 1
    while edges[-1] < num_classes:
        for step in (2, 5, 10):
            if edges[-1] < num_classes:
                edges.append(min(step * scale, num_classes))
        scale *= 10
    return edges


def summarize_ranks(ranks: torch.Tensor, num_classes: int) -> dict:
    """Histogram on rank_edges, mean / median rank, and the shares of chosen tokens outside the top 1 / 5 / 50."""
    flat = ranks.flatten().double().numpy()
    if flat.size == 0:
        raise HyperfitError("no generated tokens to rank")
    edges = rank_edges(num_classes)
    counts, _ = np.histogram(flat, bins=edges)
    summary = {"tokens": int(flat.size), "num_classes": int(num_classes), "mean_rank": float(flat.mean()),
               "median_rank": float(np.median(flat)), "histogram": {"edges": edges, "counts": counts.tolist()}}
    for k in TOP:
        summary[f"outside_top{k}"] = float((flat >= k).mean())
    return summary


def plot_ranks(summaries: dict, path: str | os.PathLike, model_name: str) -> None:
    """One bar group per rank bin: the share of each condition's chosen tokens at that rank under the base."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(summaries))
    for i, (name, summary) in enumerate(summaries.items()):
        edges, counts = summary["histogram"]["edges"], np.asarray(summary["histogram"]["counts"], dtype=float)
        ax.bar(np.arange(len(counts)) + i * width, counts / counts.sum(), width=width, label=name)
    labels = [f"{a}" if b - a == 1 else f"{a}-{b - 1}" for a, b in zip(edges[:-1], edges[1:])]
    ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, labels, rotation=45)
    ax.set(xlabel=f"rank under {model_name} (0 = its top-1)", ylabel="share of chosen tokens",
           title="Ranks of the generated tokens under the base model")
    ax.legend()
    fig.tight_layout()
    save_png(fig, path, dpi=120)


def mean_log_prob_shift(base, hyperfitted, ids, context_len: int, batch_size: int = 16) -> torch.Tensor:
    """(classes,) mean over held-out positions of log p_hyperfitted(v) - log p_base(v), for every entry v."""
    ids = torch.as_tensor(ids)
    total, count = None, 0
    for (_, base_logits), (_, fitted_logits) in zip(_positions(base, ids, context_len, batch_size),
                                                    _positions(hyperfitted, ids, context_len, batch_size)):
        if base_logits.shape[-1] != fitted_logits.shape[-1]:
            raise HyperfitError(f"the models predict {base_logits.shape[-1]} and {fitted_logits.shape[-1]} "
                                "classes: a logit bias needs one vocabulary")
        # -inf - -inf would be nan: a class masked in both models has no shift
        shift = torch.nan_to_num(torch.log_softmax(fitted_logits, -1) - torch.log_softmax(base_logits, -1),
                                 nan=0.0, posinf=0.0, neginf=0.0)
        part = shift.double().sum(dim=(0, 1)).cpu()
        total = part if total is None else total + part
        count += shift.shape[0] * shift.shape[1]
    return (total / count).float()


def save_logit_bias(path: str | os.PathLike, bias: torch.Tensor, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({LOGIT_BIAS_KEY: bias.float().contiguous()}, str(tmp), metadata=metadata)


def load_logit_bias(path: str | os.PathLike, num_classes: int | None = None) -> torch.Tensor:
    """A (classes,) bias vector written by save_logit_bias; checked against the model's number of classes."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise HyperfitError(f"cannot read the logit bias {path}: {exc}") from None
    bias = tensors.get(LOGIT_BIAS_KEY)
    if bias is None or bias.ndim != 1 or not bias.is_floating_point():
        raise HyperfitError(f"{path} holds no 1-D float tensor {LOGIT_BIAS_KEY!r} (write one with "
                            "`analyze --write-logit-bias`)")
    if not torch.isfinite(bias).all():
        raise HyperfitError(f"the logit bias {path} holds non-finite values")
    if num_classes is not None and len(bias) != num_classes:
        raise HyperfitError(f"the logit bias {path} has {len(bias)} entries; the model predicts {num_classes} "
                            "classes")
    return bias.float()


def output_classes(model) -> int:
    """How many logits the model emits (ImageGPT: one fewer than its vocabulary, no SOS logit)."""
    head = model.get_output_embeddings()
    if head is None or not hasattr(head, "weight"):
        raise HyperfitError("the model has no output head to bias")
    return int(head.weight.shape[0])


class LogitBias(LogitsProcessor):
    """Adds one fixed vector to every step's logits: the static-reweighting ablation. Put it first among the
    processors (before a blocker or the sampling warpers), so they see the reweighted scores."""

    def __init__(self, bias: torch.Tensor):
        self.bias = bias.float()
        self._on_device: dict[torch.device, torch.Tensor] = {}

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if scores.shape[-1] != len(self.bias):
            raise HyperfitError(f"the logit bias has {len(self.bias)} entries; the scores have {scores.shape[-1]}")
        bias = self._on_device.get(scores.device)
        if bias is None:
            bias = self._on_device[scores.device] = self.bias.to(scores.device)
        return scores + bias.to(scores.dtype)


__all__ = ["token_ranks", "rank_edges", "summarize_ranks", "plot_ranks", "mean_log_prob_shift", "save_logit_bias",
           "load_logit_bias", "output_classes", "LogitBias"]
