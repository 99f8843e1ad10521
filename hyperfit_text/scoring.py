"""The text scoring entry: every registered text metric of one set of continuations (hyperfit_core.metric_registry).

`text evaluate` calls it for each generate run and for the held-out human continuations; scripts/data_influence.py
reads what evaluate wrote. A text metric is one registry entry plus its compute function (docs/metrics.md); it
runs here as soon as the sample has what it needs (MAUVE and fluency: hyperfit_text/quality.py).
"""

from __future__ import annotations

import numpy as np

from hyperfit_core import metric_registry as registry
from hyperfit_core import metrics
from hyperfit_core.errors import HyperfitError
from hyperfit_core.scoring import Sample, Scored, Scores, score


def score_text(generated, settings, texts: list[str] | None = None, train=None,
               reference: Sample | None = None, extra: dict | None = None) -> Scores:
    """Scores of the continuations `generated` (N, L): diversity, repetition, copying of `train` (the hyperfitting
    data's ids without BOS) and, given the decoded `texts`, word-level metrics; with a scoring model named in
    `settings`, MAUVE against `reference` and fluency (`extra`: hyperfit_text.quality.quality_sample_extra).
    `settings` holds each metric's parameters (hyperfit_text.evaluate.EvalSettings: ttr_last, bleu_order, rep_n,
    overlap_threshold, quality_model, ...)."""
    if len(generated) < 2:
        raise HyperfitError("evaluation needs at least two generations (Self-BLEU compares them)")
    if texts is not None and len(texts) != len(generated):
        raise HyperfitError(f"{len(texts)} decoded texts for {len(generated)} generations")
    sample = Sample(tokens=generated, texts=texts, train=train, reference=reference, extra=extra or {})
    return score(sample, registry.TEXT, settings)


def word_type_token_ratio(sample: Sample, last: int) -> Scored:
    """TTR of each text's last `last` whitespace-separated words (None for a text without words); the mean over
    the texts that have words (None if none has)."""
    per_item = []
    for text in sample.texts:
        words = text.split()
        vocab: dict[str, int] = {}
        per_item.append(metrics.type_token_ratio([vocab.setdefault(w, len(vocab)) for w in words], last)
                        if words else None)
    kept = [v for v in per_item if v is not None]
    return Scored(float(np.mean(kept)) if kept else None, per_item)
