"""MAUVE and fluency in `text evaluate` (issue 26): which scoring model judges, the registry's compute functions
(hyperfit_core/metric_list.py: `mauve`, `fluency_perplexity`), their notes for results.md, and the quality plot.

What is judged is the text a person reads (a generation row's `display`: special tokens left out, the human
reference cut to the continuation's token count), so a condition and the human references are scored alike and
their lengths match. MAUVE compares a condition's continuations with the human continuations of the same
prompts; fluency is each continuation's perplexity given its context, under a model that did not generate it.
Both go through the per-text caches (hyperfit_text/text_cache.py), so evaluating a run again costs a cache read;
under torchrun each process computes its part of the texts not cached yet (the scoring model on its own GPU).
"""

from __future__ import annotations

import os
from pathlib import Path

from hyperfit_core import distributed_eval
from hyperfit_core import metric_registry as registry
from hyperfit_core.errors import HyperfitError
from hyperfit_core.scoring import Sample, Scored
from hyperfit_core.plots import save_png
from hyperfit_text import scorer as scorer_module

NONE = "none"  # --quality-model none: evaluate without MAUVE and fluency, on purpose
QUALITY_PLOT = "quality.png"
CACHE_FOLDER = "text-quality-cache"  # under --out unless --quality-cache names another folder
_LOADED: dict = {}  # (name, device) -> TextModel: one scoring model, loaded once per process


def choose_quality_model(named: str | None) -> tuple[str | None, str | None]:
    """(the scoring model to use or None, why none). Nothing named: the default scorer when it is here, else
    none (evaluation runs and says so); "none": none; any other name is used (a missing one fails to load)."""
    if named is None:
        default = scorer_module.DEFAULT_SCORER
        if Path(default).is_file():
            return default, None
        return None, (f"the default scoring model {default} is not here and no --quality-model was named "
                      "(shared/ASSETS.md says how to fetch it)")
    if named.strip().lower() == NONE:
        return None, "--quality-model none"
    return named, None


def load_quality_model(name: str, device: str = "auto"):
    """The scoring model, loaded once per (name, device) and kept for the next condition; a model that cannot be
    loaded is one error line naming the option."""
    key = (name, device)
    if key not in _LOADED:
        try:
            text_model = scorer_module.load_scorer(name, device)
        except HyperfitError as exc:
            raise HyperfitError(f"--quality-model {name}: {exc}") from None
        _LOADED.clear()  # hold one scoring model at a time
        _LOADED[key] = text_model
    return _LOADED[key]


def scored_texts(rows: list[dict], part: str) -> list[str]:
    """The `part` ("context", "continuation", "reference") of each generation row as a person reads it (files
    written before rows had `display` give the whole decoded part)."""
    return [row["display"][part] if "display" in row else row[part] for row in rows]


def quality_sample_extra(rows: list[dict], part: str) -> dict:
    """Sample.extra of one set of texts: the texts MAUVE and fluency judge and the contexts they follow."""
    return {"scored_texts": scored_texts(rows, part), "contexts": scored_texts(rows, "context")}


def _texts(sample: Sample) -> list[str]:
    return sample.extra.get("scored_texts") or sample.texts


# --- compute functions (registered in hyperfit_core/metric_list.py) -------------------------------------------

def mauve_metric(sample: Sample, model: str, device: str, cache: str | None, clusters) -> dict[str, Scored]:
    """MAUVE of the sample's continuations against its reference's (the human continuations of the same
    prompts); the counts it rests on ride along as record fields."""
    from hyperfit_text.mauve_score import mauve_score
    from hyperfit_text.text_features import cached_text_features

    text_model = load_quality_model(model, device)
    generated = cached_text_features(text_model, _texts(sample), cache)
    human = cached_text_features(text_model, _texts(sample.reference), cache)
    # every process holds every feature (split and gathered by the cache); the clustering is done once
    out = distributed_eval.on_main(lambda: mauve_score(generated, human, num_buckets=clusters))
    fields = {k: out[k] for k in ("mauve_texts", "mauve_human_texts", "mauve_clusters", "mauve_seed",
                                  "mauve_feature_dim")}
    return {"mauve": Scored(out["mauve"], fields=fields),
            "mauve_frontier_integral": Scored(out["mauve_frontier_integral"])}


def fluency_metric(sample: Sample, model: str, device: str, cache: str | None) -> dict[str, Scored]:
    """Perplexity of each continuation given its context under the scoring model, and their mean / median."""
    from hyperfit_text.fluency import fluency

    contexts = sample.extra.get("contexts")
    if contexts is None:
        raise HyperfitError("fluency needs each continuation's context (Sample.extra['contexts'])")
    out = fluency(load_quality_model(model, device), contexts, _texts(sample), cache)
    fields = {"fluency_texts": out["fluency_texts"], "fluency_tokens": out["fluency_tokens"]}
    return {"fluency_perplexity": Scored(out["fluency_perplexity"], out["fluency_perplexity_per_text"], fields),
            "fluency_perplexity_median": Scored(out["fluency_perplexity_median"])}


# --- what results.json / results.md say about them -------------------------------------------------------------

def quality_record(settings, results: dict) -> dict:
    """results.json's "quality": the scoring model and the notes, or why MAUVE and fluency were not computed."""
    if not settings.quality_model:
        return {"computed": False, "why": settings.quality_skipped or "no scoring model was named"}
    return {"computed": True, "model": settings.quality_model, "cache": settings.quality_cache,
            "notes": quality_notes(settings.quality_model, results)}


def quality_notes(model: str, results: dict) -> list[str]:
    from hyperfit_text.fluency import FLUENCY_NOTE
    from hyperfit_text.mauve_score import mauve_note

    counts = sorted({(e["mauve_texts"], e["mauve_clusters"]) for e in results.values() if "mauve_texts" in e})
    notes = [mauve_note(texts, clusters) for texts, clusters in counts]
    return notes + [FLUENCY_NOTE.format(scorer=model)]


def plot_quality(results: dict, human: dict | None, path: str | os.PathLike) -> None:
    """Quality against diversity, one point per condition: MAUVE and fluency perplexity (y) against TTR (x), with
    the human references' values as lines (closer to them is better for TTR and fluency)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["mauve", "fluency_perplexity"]
    fig, axes = plt.subplots(1, len(panels), figsize=(9, 3.8))
    for ax, name in zip(axes, panels):
        for condition, entry in results.items():
            x, y = registry.read(entry, "type_token_ratio"), registry.read(entry, name)
            if x is not None and y is not None:
                ax.plot([x], [y], "o", label=condition)
        if human is not None:
            if registry.read(human, "type_token_ratio") is not None:
                ax.axvline(registry.read(human, "type_token_ratio"), color="gray", ls="--", lw=0.8,
                           label="human TTR")
            if registry.read(human, name) is not None:
                ax.axhline(registry.read(human, name), color="gray", ls=":", lw=0.8, label="human value")
        ax.set(xlabel=registry.label("type_token_ratio"), ylabel=registry.label(name), title=registry.label(name))
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
