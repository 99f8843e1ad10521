"""Sharpened predictions (paper, Sec. 5): how peaked a causal LM's next-token distributions are on held-out
sequences, how often its top-1 guess is right, and its perplexity there.

Hyperfitted models put nearly all mass on one token (entropy near 0 nats, top-1 probability near 1) while
their held-out perplexity gets worse; these functions measure both for any modality's token ids.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from hyperfit_core.atomic import write_json
from hyperfit_core.decoding import model_max_positions
from hyperfit_core.device_map import input_device
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import ANALYSIS, ANALYSIS_PLOT
from hyperfit_core.plots import save_png

TOP_K = (1, 3, 5)


def _check_ids(ids, context_len: int) -> torch.Tensor:
    ids = torch.as_tensor(ids)
    if ids.ndim != 2 or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise HyperfitError(f"ids must be a 2-D (count, length) integer tensor, got {ids.dtype} "
                            f"of shape {tuple(ids.shape)}")
    if len(ids) == 0:
        raise HyperfitError("no held-out sequences given")
    if not 1 <= context_len < ids.shape[1]:
        raise HyperfitError(f"context_len must be in [1, {ids.shape[1] - 1}] for sequences of length "
                            f"{ids.shape[1]}, got {context_len}")
    return ids.long()


@torch.no_grad()
def prediction_stats(model, ids, context_len: int, batch_size: int = 16) -> dict:
    """Per held-out position, the model's prediction of ids[:, t] from ids[:, :t] for t >= context_len.

    Returns CPU tensors of shape (count, length - context_len):
      entropy        H(p) = -sum_v p(v) log p(v), in nats, p = softmax of the logits (in float32);
      top{k}_prob    summed probability of the k most likely tokens, k in (1, 3, 5) (capped at #classes);
      top1_token     the argmax token; top1_correct: whether it equals the true token;
      cross_entropy  -log p(true token), in nats;
    and `num_classes` (int): the number of logits, so ln(num_classes) is the largest possible entropy.
    The model may have fewer logits than the id vocabulary (ImageGPT has no logit for its SOS token), but
    every predicted true token must have one. Peak memory is a few (batch_size, length, classes) float32
    tensors: lower batch_size for large vocabularies.
    """
    ids = _check_ids(ids, context_len)
    if batch_size < 1:
        raise HyperfitError("batch_size must be at least 1")
    limit = model_max_positions(model)
    if limit is not None and ids.shape[1] - 1 > limit:
        raise HyperfitError(f"sequences of {ids.shape[1]} tokens need {ids.shape[1] - 1} positions; "
                            f"the model has {limit}")
    device = input_device(model)
    # restore every submodule's own flag: a wrapper's .train(flag) would overwrite its inner model's
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    num_classes = None
    try:
        for first in range(0, len(ids), batch_size):
            batch = ids[first:first + batch_size].to(device)
            # logits at position t-1 predict token t; the last token is never an input, so a 1025-token
            # ImageGPT sequence needs only its 1024 positions
            logits = model(input_ids=batch[:, :-1]).logits[:, context_len - 1:].float()
            num_classes = logits.shape[-1]
            target = batch[:, context_len:]
            if int(target.max()) >= num_classes:
                raise HyperfitError(f"a held-out token id ({int(target.max())}) has no logit: the model "
                                    f"predicts only {num_classes} classes")
            for name, value in _position_stats(logits, target).items():
                parts.setdefault(name, []).append(value.cpu())
    finally:
        for module, training in modes:
            module.training = training
    stats = {name: torch.cat(values) for name, values in parts.items()}
    stats["num_classes"] = num_classes
    return stats


def shared_prediction_stats(model, ids, context_len: int, batch_size: int = 16) -> dict:
    """`prediction_stats` with the rows split over the processes of a torchrun / accelerate launch (each scores
    its contiguous part), gathered in row order on every process; alone, just `prediction_stats`."""
    from hyperfit_core import distributed_eval

    ids = _check_ids(ids, context_len)
    return distributed_eval.map_dict(len(ids), lambda part: prediction_stats(model, ids[part], context_len,
                                                                             batch_size=batch_size))


def _position_stats(logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    log_probs = torch.log_softmax(logits, dim=-1)
    probs = log_probs.exp()
    # entr(p) = -p log p with entr(0) = 0: masked (-inf) logits would give 0 * -inf = nan in p * log_probs
    entropy = torch.special.entr(probs).sum(-1)
    top = probs.topk(min(max(TOP_K), probs.shape[-1]), dim=-1)
    out = {"entropy": entropy}
    for k in TOP_K:
        out[f"top{k}_prob"] = top.values[..., :k].sum(-1)
    out["top1_token"] = top.indices[..., 0]
    out["top1_correct"] = out["top1_token"] == target
    out["cross_entropy"] = -log_probs.gather(-1, target[..., None]).squeeze(-1)
    return out


def mean_token_loss(model, ids, batch_size: int = 16) -> float:
    """Mean cross-entropy (nats/token) over every predicted position of `ids` (all but the first), in eval mode:
    the exact loss of these weights, which a training loop's running mean of step losses lags behind."""
    return float(prediction_stats(model, ids, 1, batch_size=batch_size)["cross_entropy"].mean())


def summarize(stats: dict, bins: int = 40) -> dict:
    """Scalar summary of `prediction_stats` over all positions: entropy mean/median and a histogram on
    `bins` equal bins over [0, ln(num_classes)] (the same edges for every model with that many classes),
    mean top-k probabilities, top-1 accuracy, mean cross-entropy and perplexity = exp(mean cross-entropy)."""
    entropy = stats["entropy"].double().flatten()
    if entropy.numel() == 0:
        raise HyperfitError("no predicted positions to summarize")
    edges = np.linspace(0.0, math.log(max(2, stats["num_classes"])), bins + 1)
    counts, _ = np.histogram(np.clip(entropy.numpy(), 0.0, edges[-1]), bins=edges)
    mean_ce = float(stats["cross_entropy"].double().mean())
    summary = {
        "positions": int(entropy.numel()),
        "num_classes": int(stats["num_classes"]),
        "entropy_mean": float(entropy.mean()),
        "entropy_median": float(entropy.median()),
        "entropy_hist": {"edges": edges.tolist(), "counts": counts.tolist()},
        "top1_accuracy": float(stats["top1_correct"].double().mean()),
        "cross_entropy_mean": mean_ce,
        "perplexity": math.exp(mean_ce) if mean_ce < 700 else math.inf,  # confidently wrong models overflow
    }
    for k in TOP_K:
        summary[f"top{k}_prob_mean"] = float(stats[f"top{k}_prob"].double().mean())
    return summary


def top1_agreement(model_a, model_b, ids, context_len: int, batch_size: int = 16) -> float:
    """Fraction of held-out positions (t >= context_len) where both models' most likely next token is the
    same (the paper compares hyperfitted models trained on the same data in different orders)."""
    a = prediction_stats(model_a, ids, context_len, batch_size)["top1_token"]
    b = prediction_stats(model_b, ids, context_len, batch_size)["top1_token"]
    return float((a == b).double().mean())


def _summary_of(entry) -> dict:
    return entry[1] if isinstance(entry, tuple) else entry


def plot_analysis(summaries: dict, path: str | os.PathLike) -> None:
    """PNG with, per model, the entropy histogram (as a fraction of positions) and the mean entropy at each
    held-out position. `summaries` maps a model name to (prediction_stats, summarize) results."""
    if not summaries:
        raise HyperfitError("nothing to plot: no models given")
    import matplotlib
    matplotlib.use("Agg")  # headless: no display on training machines
    import matplotlib.pyplot as plt

    fig, (hist_ax, curve_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for name, (stats, summary) in summaries.items():
        edges = np.asarray(summary["entropy_hist"]["edges"])
        counts = np.asarray(summary["entropy_hist"]["counts"], dtype=float)
        hist_ax.stairs(counts / max(1.0, counts.sum()), edges, label=name)
        per_position = stats["entropy"].double().mean(0).numpy()
        curve_ax.plot(np.arange(1, len(per_position) + 1), per_position, label=name)
    hist_ax.set(xlabel="entropy of next-token distribution (nats)", ylabel="fraction of positions",
                title="Prediction entropy")
    curve_ax.set(xlabel="position after context", ylabel="mean entropy (nats)", title="Entropy by position")
    for ax in (hist_ax, curve_ax):
        ax.legend()
    fig.tight_layout()
    save_png(fig, path, dpi=120)


def write_report(summaries: dict, path_json: str | os.PathLike) -> None:
    """JSON {model name: summary}; values may be summaries or (stats, summary) pairs."""
    write_json(path_json, {name: _summary_of(entry) for name, entry in summaries.items()})


def save_analysis(folder, summaries: dict, agreement: tuple[str, str, float] | None = None) -> str:
    """analysis.json, analysis.png and (for two models) agreement.json in `folder`; returns a short text summary."""
    from pathlib import Path

    folder = Path(folder)
    write_report(summaries, folder / ANALYSIS)
    plot_analysis(summaries, folder / ANALYSIS_PLOT)
    lines = []
    if agreement is not None:
        a, b, value = agreement
        write_json(folder / "agreement.json", {"models": [a, b], "top1_agreement": value})
        lines.append(f"top-1 agreement {a} vs {b}: {value:.4f}")
    for name, entry in summaries.items():
        summary = _summary_of(entry)
        lines.append(f"{name}: entropy {summary['entropy_mean']:.4f} nats, top-1 prob {summary['top1_prob_mean']:.4f}, "
                     f"top-1 acc {summary['top1_accuracy']:.4f}, perplexity {summary['perplexity']:.4f}")
    return "\n".join(lines)


def run_analysis(models: dict, ids, context_len: int, out, modality: str, config: dict, batch_size: int = 16,
                 device: str = "auto", mechanism=None):
    """`hyperfit <modality> analyze`: every model's sharpened-prediction statistics on the same held-out ids
    (and the first two models' top-1 agreement) in a new run dir; prints a summary and the run dir.
    mechanism: a hyperfit_core.mechanism.MechanismOptions, the follow-up's controls run on the same positions."""
    import click

    from hyperfit_core.device import resolve_device

    from hyperfit_core import distributed_eval

    from hyperfit_core.device_map import is_dispatched

    if mechanism is not None:
        mechanism.check(models)
    target = resolve_device(device)
    for model in models.values():
        if not is_dispatched(model):  # a device-mapped model stays split where its map put it
            model.to(target)
    run = distributed_eval.shared_run(out, f"{modality}-analyze")
    run.write_config({**distributed_eval.describe(), **config}, command=f"{modality} analyze")
    summaries = {}
    for name, model in models.items():  # under torchrun each process scores its part of the rows
        stats = shared_prediction_stats(model, ids, context_len, batch_size=batch_size)
        summaries[name] = (stats, summarize(stats))
        run.log({"event": "analysis", "model": name,
                 **{k: v for k, v in summaries[name][1].items() if not isinstance(v, dict)}})
    agreement = None
    if len(models) >= 2:  # top1_agreement's definition, on the top-1 tokens just computed
        a, b = list(models)[:2]
        same = summaries[a][0]["top1_token"] == summaries[b][0]["top1_token"]
        agreement = (a, b, float(same.double().mean()))
    if not run.writer:
        return run
    click.echo(save_analysis(run.path, summaries, agreement), err=True)
    if mechanism is not None:
        mechanism.run(run, models, summaries, ids, context_len, batch_size)
    click.echo(str(run.path))
    return run


__all__ = ["prediction_stats", "shared_prediction_stats", "summarize",
           "top1_agreement", "plot_analysis", "write_report", "save_analysis",
           "run_analysis"]
