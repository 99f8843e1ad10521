"""Layer by layer (the follow-up's third control, Li et al. 2026: hyperfitting as a late-stage geometric
expansion): per block, the effective dimension of its hidden states and how much its weights moved; and the
swap-in, the base model with only its last K blocks taken from the hyperfitted one.

Effective dimension = participation ratio of the hidden-state covariance C over held-out positions:
PR = (sum_i l_i)^2 / sum_i l_i^2 = tr(C)^2 / ||C||_F^2 (l_i its eigenvalues): D for isotropic states in D
dimensions, 1 for states on one line. Relative weight change of a group of parameters:
sqrt(sum ||W_h - W_b||^2) / sqrt(sum ||W_b||^2) (Frobenius norms over the group).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_core.plots import save_png


def participation_ratio(covariance: torch.Tensor) -> float:
    covariance = covariance.double()
    norm = float((covariance ** 2).sum())
    return float(torch.trace(covariance)) ** 2 / norm if norm > 0 else 0.0


def covariance_of(states: torch.Tensor) -> torch.Tensor:
    """Covariance (float64) of (positions, dim) states."""
    x = states.double()
    x = x - x.mean(0, keepdim=True)
    return x.T @ x / max(1, len(x) - 1)


class _Moments:
    """Streaming sum and sum of outer products: the covariance without keeping every hidden state."""

    def __init__(self):
        self.count, self.total, self.outer = 0, None, None

    def add(self, x: torch.Tensor) -> None:
        x = x.double().cpu()
        s, o = x.sum(0), x.T @ x
        self.total = s if self.total is None else self.total + s
        self.outer = o if self.outer is None else self.outer + o
        self.count += len(x)

    def covariance(self) -> torch.Tensor:
        mean = self.total / self.count
        return (self.outer - self.count * torch.outer(mean, mean)) / max(1, self.count - 1)


def block_list(model) -> tuple[str, torch.nn.ModuleList]:
    """The model's transformer blocks: the ModuleList with config.num_hidden_layers entries (transformer.h of
    GPT-2 / ImageGPT, model.layers of Llama), with its dotted name."""
    layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    found = [(name, module) for name, module in model.named_modules()
             if isinstance(module, torch.nn.ModuleList) and len(module) == layers]
    if len(found) != 1:
        raise HyperfitError(f"cannot tell the transformer blocks of this {type(model).__name__}: "
                            f"{len(found)} module lists of {layers} entries")
    return found[0]


@torch.no_grad()
def hidden_state_dimensions(model, ids, context_len: int, batch_size: int = 16) -> list[float]:
    """Participation ratio of the hidden states at the held-out positions t >= context_len - 1 (those whose
    logits `analyze` scores), for each entry of transformers' hidden_states: the embeddings' output, then every
    block's (the last after the final norm, as transformers returns it)."""
    ids = torch.as_tensor(ids).long()
    if ids.ndim != 2 or not 1 <= context_len < ids.shape[1]:
        raise HyperfitError(f"need (count, length) ids longer than context_len={context_len}, got {tuple(ids.shape)}")
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    device = next(model.parameters()).device
    moments: list[_Moments] = []
    try:
        for first in range(0, len(ids), batch_size):
            batch = ids[first:first + batch_size, :-1].to(device)
            states = model(input_ids=batch, output_hidden_states=True).hidden_states
            if not moments:
                moments = [_Moments() for _ in states]
            for acc, state in zip(moments, states):
                acc.add(state[:, context_len - 1:].reshape(-1, state.shape[-1]).float())
    finally:
        for module, training in modes:
            module.training = training
    return [participation_ratio(acc.covariance()) for acc in moments]


def parameter_groups(model) -> dict[str, list[str]]:
    """Parameter names by group: block.0 ... block.N-1, embeddings (the input embedding), head (the output
    head when it is not tied to the embedding), other (position embeddings, final norm, ...)."""
    prefix, blocks = block_list(model)
    ids = {id(p): n for n, p in model.named_parameters()}  # the first name of each distinct tensor
    groups: dict[str, list[str]] = {f"block.{i}": [] for i in range(len(blocks))}
    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    special = {}
    if embed is not None:
        special[ids[id(embed.weight)]] = "embeddings"
    if head is not None and id(head.weight) in ids and ids[id(head.weight)] not in special:
        special[ids[id(head.weight)]] = "head"
    groups.update(embeddings=[], head=[], other=[])
    for name in ids.values():
        if name.startswith(prefix + "."):
            groups[f"block.{name[len(prefix) + 1:].split('.')[0]}"].append(name)
        else:
            groups[special.get(name, "other")].append(name)
    return {group: members for group, members in groups.items() if members}


def check_same_shapes(base, other) -> None:
    a, b = base.state_dict(), other.state_dict()
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        differing = sorted(set(a) ^ set(b)) or [k for k in a if a[k].shape != b[k].shape]
        raise HyperfitError(f"the models differ in shape ({type(base).__name__} vs {type(other).__name__}; first "
                            f"difference: {differing[0]}): compare / swap only models of one architecture and size")


@torch.no_grad()
def relative_weight_changes(base, hyperfitted) -> dict[str, float]:
    """Per parameter group, ||W_h - W_b|| / ||W_b|| (Frobenius over the group's tensors)."""
    check_same_shapes(base, hyperfitted)
    params_b, params_h = dict(base.named_parameters()), dict(hyperfitted.named_parameters())
    out = {}
    for group, members in parameter_groups(base).items():
        diff = sum(float(((params_h[n].double() - params_b[n].double()) ** 2).sum()) for n in members)
        norm = sum(float((params_b[n].double() ** 2).sum()) for n in members)
        out[group] = math.sqrt(diff) / math.sqrt(norm) if norm > 0 else (0.0 if diff == 0 else math.inf)
    return out


@torch.no_grad()
def swap_last_blocks(base, donor, last: int) -> list[int]:
    """Copy the last `last` transformer blocks of `donor` into `base` (in place); returns their indices."""
    check_same_shapes(base, donor)
    _, base_blocks = block_list(base)
    _, donor_blocks = block_list(donor)
    if isinstance(last, bool) or not isinstance(last, int) or not 1 <= last <= len(base_blocks):
        raise HyperfitError(f"--last must be between 1 and {len(base_blocks)} (the model's blocks) or 'all', "
                            f"got {last!r}")
    swapped = list(range(len(base_blocks) - last, len(base_blocks)))
    for i in swapped:
        base_blocks[i].load_state_dict(donor_blocks[i].state_dict())
    return swapped


def parse_last(value: str, blocks: int) -> int:
    """--last K: a whole number of blocks in [1, blocks], or `all`."""
    if value == "all":
        return blocks
    try:
        last = int(value)
    except ValueError:
        raise HyperfitError(f"--last must be a number of blocks or 'all', got {value!r}") from None
    if not 1 <= last <= blocks:
        raise HyperfitError(f"--last must be between 1 and {blocks} (the model's blocks) or 'all', got {last}")
    return last


def write_swapped_model(base, donor, last: str, out, save, record: dict) -> list[int]:
    """`hyperfit <modality> swap-blocks`: the base with its last K blocks from the donor, saved by save(folder)
    (save_pretrained with the tokenizer / image processor) into the new folder `out`, with a record of the swap.
    Everything is checked before the folder is written; it appears whole or not at all."""
    from pathlib import Path

    from hyperfit_core.atomic import atomic_dir, write_json
    from hyperfit_core.formats import SWAP_RECORD

    out = Path(out)
    if out.exists():
        raise HyperfitError(f"--out {out} exists: name a new folder for the swapped model")
    if not out.parent.is_dir():
        raise HyperfitError(f"--out: folder {out.parent} does not exist")
    check_same_shapes(base, donor)
    count = parse_last(last, len(block_list(base)[1]))
    swapped = swap_last_blocks(base, donor, count)
    with atomic_dir(out) as tmp:
        save(tmp)
        write_json(tmp / SWAP_RECORD, {**record, "last": count, "blocks_from_donor": swapped,
                                       "blocks": len(block_list(base)[1])})
    return swapped


def plot_layers(report: dict, path: str | os.PathLike) -> None:
    """Effective dimension per hidden state for each model, and the relative weight change per block."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (dim_ax, change_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for name, dims in report["effective_dimension"].items():
        dim_ax.plot(np.arange(len(dims)), dims, marker="o", label=name)
    dim_ax.set(xlabel="hidden state (0 = embeddings, i = after block i)", ylabel="participation ratio",
               title="Effective dimension")
    dim_ax.legend()
    changes = report.get("relative_weight_change") or {}
    if changes:
        names = list(changes)
        change_ax.bar(np.arange(len(names)), [changes[n] for n in names])
        change_ax.set_xticks(np.arange(len(names)), names, rotation=45)
    change_ax.set(ylabel="||W_h - W_b|| / ||W_b||", title="Relative weight change")
    fig.tight_layout()
    save_png(fig, path, dpi=120)


__all__ = ["participation_ratio", "covariance_of", "block_list", "hidden_state_dimensions", "parameter_groups",
           "relative_weight_changes", "swap_last_blocks", "check_same_shapes", "parse_last", "write_swapped_model",
           "plot_layers"]
