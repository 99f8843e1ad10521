"""The follow-up's controls (Li, Ding, Garces Arias, Heumann 2026) as options of `hyperfit <modality> analyze`,
run on the same held-out positions as the sharpened-prediction statistics (docs/mechanism.md):

    --match-entropy        entropy-matched temperature of the base (hyperfit_core.entropy_match)
    --ranks GEN_RUN        ranks under the base of the tokens a generation chose (hyperfit_core.ranks)
    --write-logit-bias F   the static-reweighting ablation's bias vector (hyperfit_core.ranks)
    --layers               effective dimension and weight change per block (hyperfit_core.layers)

The first --model is the base, the second the hyperfitted one. The adapters turn a generation run into
(ids, context_len) per condition; everything else here is modality-agnostic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
import torch

from hyperfit_core.atomic import write_json
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import ENTROPY_MATCH, LAYERS, LAYERS_PLOT, RANKS, RANKS_PLOT


@dataclass
class MechanismOptions:
    match_entropy: bool = False
    ranks: dict[str, tuple[torch.Tensor, int]] | None = None  # condition -> (ids, context_len) of a generation run
    ranks_source: str | None = None  # the generation run they came from
    write_logit_bias: str | None = None  # where the bias vector goes
    layers: bool = False

    def any(self) -> bool:
        return bool(self.match_entropy or self.ranks or self.write_logit_bias or self.layers)

    def check(self, models) -> None:
        """Before anything is written: each option's models, and a writable bias file."""
        for flag, given in (("--match-entropy", self.match_entropy), ("--write-logit-bias", self.write_logit_bias),
                            ("--layers", self.layers)):
            if given and len(models) < 2:
                raise HyperfitError(f"{flag} compares two models: pass --model base=B --model hyperfitted=H "
                                    "(the first is the base, the second the hyperfitted one)")
        if self.write_logit_bias:
            parent = Path(self.write_logit_bias).parent
            if not parent.is_dir():
                raise HyperfitError(f"--write-logit-bias: folder {parent} does not exist")

    def run(self, run, models: dict, summaries: dict, ids, context_len: int, batch_size: int) -> None:
        names = list(models)
        if self.match_entropy:
            _match_entropy(run, models, names, summaries, ids, context_len, batch_size)
        if self.ranks:
            _ranks(run, models[names[0]], names[0], self.ranks, self.ranks_source, batch_size)
        if self.write_logit_bias:
            _logit_bias(run, models, names, ids, context_len, batch_size, self.write_logit_bias)
        if self.layers:
            _layers(run, models, names, ids, context_len, batch_size)


def _match_entropy(run, models, names, summaries, ids, context_len, batch_size) -> None:
    from hyperfit_core.entropy_match import entropy_matched_temperature

    base, hyperfitted = names[:2]
    target = summaries[hyperfitted][1]["entropy_mean"]
    match, positions = entropy_matched_temperature(models[base], ids, context_len, target, batch_size=batch_size)
    record = {"base": base, "hyperfitted": hyperfitted, "positions": positions,
              "hyperfitted_entropy_at_1": target, **match.to_dict(),
              "decode_with": f"--decoding sample --temperature {match.temperature:.6g} (no top-k / top-p)"}
    write_json(run.path / ENTROPY_MATCH, record)
    run.log({"event": "entropy_match", **record})
    click.echo(f"entropy-matched temperature of {base}: T = {match.temperature:.4f} gives "
               f"{match.entropy_at_temperature:.4f} nats ({hyperfitted} at T=1: {target:.4f}; {base} at T=1: "
               f"{match.base_entropy_at_1:.4f})", err=True)


def _ranks(run, model, name, conditions, source, batch_size) -> None:
    from hyperfit_core.ranks import output_classes, plot_ranks, summarize_ranks, token_ranks

    classes = output_classes(model)
    summaries = {}
    for condition, (ids, context_len) in conditions.items():
        summaries[condition] = summarize_ranks(token_ranks(model, ids, context_len, batch_size), classes)
        shares = ", ".join(f"outside top-{k} {summaries[condition][f'outside_top{k}']:.3f}" for k in (1, 5, 50))
        click.echo(f"ranks under {name} of {condition}'s tokens: {shares}", err=True)
    write_json(run.path / RANKS, {"model": name, "generations": source, "conditions": summaries})
    plot_ranks(summaries, run.path / RANKS_PLOT, name)
    run.log({"event": "ranks", "model": name, "generations": source,
             **{c: {k: v for k, v in s.items() if k != "histogram"} for c, s in summaries.items()}})


def _logit_bias(run, models, names, ids, context_len, batch_size, path) -> None:
    from hyperfit_core.ranks import mean_log_prob_shift, save_logit_bias

    base, hyperfitted = names[:2]
    bias = mean_log_prob_shift(models[base], models[hyperfitted], ids, context_len, batch_size)
    save_logit_bias(path, bias, {"base": base, "hyperfitted": hyperfitted, "analyze_run": str(run.path)})
    run.log({"event": "logit_bias", "file": str(path), "base": base, "hyperfitted": hyperfitted,
             "entries": len(bias), "mean": float(bias.mean()), "max": float(bias.max()), "min": float(bias.min())})
    click.echo(f"logit bias ({hyperfitted} minus {base}, {len(bias)} entries): {path}", err=True)


def _layers(run, models, names, ids, context_len, batch_size) -> None:
    from hyperfit_core.layers import hidden_state_dimensions, plot_layers, relative_weight_changes

    base, hyperfitted = names[:2]
    report = {"base": base, "hyperfitted": hyperfitted,
              "effective_dimension": {n: hidden_state_dimensions(models[n], ids, context_len, batch_size)
                                      for n in names},
              "relative_weight_change": relative_weight_changes(models[base], models[hyperfitted])}
    write_json(run.path / LAYERS, report)
    plot_layers(report, run.path / LAYERS_PLOT)
    run.log({"event": "layers", **report})
    last = {n: round(d[-1], 3) for n, d in report["effective_dimension"].items()}
    click.echo(f"effective dimension of the last hidden state: {last}", err=True)


__all__ = ["MechanismOptions"]
