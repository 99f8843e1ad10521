"""Scoring through the metric registry: a Sample of generations in, every registered metric it can feed out.

The modality entries (hyperfit_text.scoring.score_text, hyperfit_vision.scoring.score_images) build a Sample and
call `score`; it runs each metric of that modality whose needs the sample meets (and whose `enabled_by` setting
is set), once per parameter value (a tuple setting such as rep_n=(1, 2, 3, 4) gives seq_rep_1..4), and returns
the set's values and, for per-item metrics, one value per generation in order (for paired comparisons). The
token metrics of every modality are computed here; their arithmetic is hyperfit_core.metrics / overlap.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from hyperfit_core import metric_registry as registry
from hyperfit_core import metrics
from hyperfit_core.errors import HyperfitError


@dataclass
class Sample:
    """One set of generations and what its metrics may read. `tokens` is the generated part only (text: the
    continuation; images: the generated rows' palette ids); `reference` is the human / real counterpart of the
    same prompts, item i with item i."""
    tokens: object = None  # (N, L) ids, or a list of 1-D sequences
    texts: list[str] | None = None
    images: object = None  # uint8 (N, H, W, 3), prompt rows included
    prefix_rows: int = 0  # image rows that came from the prompt
    train: object = None  # the hyperfitting data's token ids (BOS dropped)
    reference: "Sample | None" = None
    extra: dict = field(default_factory=dict)  # anything a plugged-in metric needs (e.g. a feature cache path)

    def has(self, need: str) -> bool:
        if need in (registry.FEATURES, registry.MODEL):  # a setting provides them: see Metric.enabled_by
            return True
        value = {registry.TOKENS: self.tokens, registry.TEXTS: self.texts, registry.IMAGES: self.images,
                 registry.TRAIN: self.train, registry.REFERENCE: self.reference}.get(need)
        return value is not None


@dataclass
class Scored:
    """A metric's value on the set and, when it has them, its per-item values (None where undefined), and record
    fields (registered in registry.FIELDS) written beside it: what the value rests on (MAUVE's text counts)."""
    value: float | None
    per_item: list | None = None
    fields: dict = field(default_factory=dict)


@dataclass
class Scores:
    values: dict = field(default_factory=dict)  # {results key: value}
    per_item: dict = field(default_factory=dict)  # {results key: [value per generation]}


def _parameter_sets(metric: registry.Metric, settings) -> list[dict]:
    """One dict of compute parameters per value of a tuple-valued setting (the product, for several)."""
    names, choices = [], []
    for param, attribute in metric.settings:
        if not hasattr(settings, attribute):
            raise HyperfitError(f"metric {metric.name} needs the setting {attribute!r}, which "
                                f"{type(settings).__name__} lacks")
        value = getattr(settings, attribute)
        names.append(param)
        choices.append(tuple(value) if isinstance(value, (tuple, list)) else (value,))
    return [dict(zip(names, combo)) for combo in itertools.product(*choices)]


def score(sample: Sample, modality: str, settings, only=None) -> Scores:
    """Every metric of `modality` (and of any modality) the sample can feed; `only` limits it to those names."""
    out, done = Scores(), {}
    for metric in registry.metrics(modality):
        if metric.compute is None or (only is not None and metric.name not in only):
            continue
        if not all(sample.has(need) for need in metric.needs):
            continue
        if metric.enabled_by and not getattr(settings, metric.enabled_by, None):
            continue
        for params in _parameter_sets(metric, settings):
            memo = (metric.compute, tuple(sorted(params.items())))
            if memo not in done:  # one function may give several metrics (the overlap spans)
                done[memo] = metric.function()(sample, **params)
            result = done[memo]
            scored = result[metric.name] if isinstance(result, dict) else result
            results_key = metric.key(**params)
            out.values[results_key] = scored.value
            out.values.update(scored.fields)
            if metric.per_item and scored.per_item is not None:
                out.per_item[results_key] = list(scored.per_item)
    return out


def _mean(per_item) -> Scored:
    return Scored(float(np.mean(per_item)), [float(v) for v in per_item])


# --- compute functions of the token metrics (registered in hyperfit_core/metric_list.py) -------------------

def type_token_ratio(sample: Sample, last: int | None = None) -> Scored:
    return _mean(metrics.type_token_ratios(sample.tokens, last))


def seq_rep(sample: Sample, n: int) -> Scored:
    seqs = metrics.as_sequences(sample.tokens)
    if min(len(s) for s in seqs) < n:  # undefined for a generation shorter than n
        return Scored(None, [None] * len(seqs))
    return _mean(metrics.seq_rep_ns(seqs, n))


def self_bleu(sample: Sample, order: int) -> Scored:
    return _mean(metrics.self_bleu_scores(sample.tokens, order))


def dataset_bleu(sample: Sample, order: int) -> Scored:
    return _mean(metrics.dataset_bleu_scores(sample.tokens, sample.train, order)[0])


def overlap(sample: Sample, threshold: int) -> dict[str, Scored]:
    from hyperfit_core.overlap import longest_common_span, span_summary  # torch: only when copying is scored

    spans = longest_common_span(sample.tokens, sample.train)
    summary = span_summary(spans, threshold)
    return {"overlap_mean_span": Scored(summary["mean_span"], spans.tolist()),
            "overlap_max_span": Scored(summary["max_span"]),
            "overlap_frac_above_threshold": Scored(summary["frac_above_threshold"])}
