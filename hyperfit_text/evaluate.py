"""Score generate runs: diversity (TTR, Self-BLEU, seq-rep-n), copying (Dataset BLEU, longest span shared with
the hyperfitting data), quality under an independent scoring model (MAUVE against the human continuations,
fluency perplexity; hyperfit_text/quality.py) and the sharpened-prediction analysis (entropy, perplexity on the
held-out references).

Exact definitions are in docs/text.md. All token metrics use the generated continuation only (the context
came from the corpus and must not count); words are the whitespace-separated pieces of its decoded text.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import click
import torch
from safetensors.torch import load_file

from hyperfit_core import metric_registry as registry
from hyperfit_core import distributed_eval
from hyperfit_core.analysis import plot_analysis, shared_prediction_stats, summarize, write_report
from hyperfit_core.atomic import write_json, write_text
from hyperfit_core.device import resolve_device
from hyperfit_core.device_map import load_kwargs
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import (ANALYSIS, ANALYSIS_PLOT, GENERATION_TEXTS, GENERATIONS, PER_ITEM, RESULTS,
                                   condition_file, condition_name, read_jsonl, read_run_config)
from hyperfit_core.rundir import RunDir
from hyperfit_core.length_curves import DEFAULT_LENGTHS, length_curve, plot_length_curves
from hyperfit_core.recipe import load_train_tokens
from hyperfit_core.scoring import Sample
from hyperfit_text.quality import (CACHE_FOLDER, QUALITY_PLOT, load_quality_model, plot_quality, quality_record,
                                   quality_sample_extra)
from hyperfit_text.scoring import score_text


@dataclass
class EvalSettings:
    ttr_last: int = 96  # the paper's code: TTR over the last 96 generated tokens
    bleu_order: int = 4
    rep_n: int = 4
    overlap_threshold: int = 10
    analysis: bool = True
    batch_size: int = 16
    device: str = "auto"
    train_run: str | None = None  # hyperfitting data to measure copying against; default: each run's own
    lengths: tuple = DEFAULT_LENGTHS  # length curve points (first L generated tokens)
    quality_model: str | None = None  # scoring model of MAUVE and fluency; None: neither is computed
    quality_skipped: str | None = None  # why there is none (results.json says it)
    quality_cache: str | None = None  # per-text features / perplexities; default OUT/text-quality-cache
    mauve_clusters: int | str = "auto"  # mauve-text's rule: max(2, texts / 10)
    model: str | None = None  # an outside JSONL's model: its tokenizer re-encodes the texts (hyperfit_text.external)
    device_map: str | None = None  # split each analysed model over devices (transformers' device_map)
    max_memory: str | None = None


@dataclass
class Generations:
    name: str
    path: Path
    config: dict
    tensors: dict[str, torch.Tensor]
    texts: list[dict] = field(default_factory=list)


def find_generation_files(paths) -> list[Path]:
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = sorted(path.glob(f"*.{GENERATIONS}"))
            if not found:
                raise HyperfitError(f"{path} holds no *.{GENERATIONS} (is it a `text generate` run?)")
            files.extend(found)
        elif path.is_file() and (path.name.endswith(f".{GENERATIONS}") or path.suffix.lower() == ".jsonl"):
            files.append(path)
        else:
            raise HyperfitError(f"not a generate run, a *.{GENERATIONS} file or a .jsonl of continuations: {path}")
    return files


def _external(path: Path, settings: EvalSettings) -> Generations:
    """An outside JSONL of continuations (vLLM, TGI, ...) as a generate run's tensors and texts."""
    from hyperfit_text.external import read_external

    read = read_external(path, settings.model)
    config = {"model": settings.model, "gguf_file": None, "train_run": settings.train_run, "blocker": False,
              "decoding": "external", "external": {"cut": read["cut"], "tokenizer": read["tokenizer"]}}
    tensors = {key: read[key] for key in ("generated", "contexts", "references")}
    return Generations(path.stem, path, config, tensors, read["texts"])


def load_generations(files: list[Path], settings: EvalSettings | None = None) -> list[Generations]:
    out, names = [], set()
    for path in files:
        if not path.name.endswith(f".{GENERATIONS}"):  # find_generation_files let only outside JSONL through
            out.append(_external(path, settings or EvalSettings()))
            names.add(out[-1].name)
            continue
        config = read_run_config(path.parent)["config"]
        try:
            tensors = load_file(str(path))
        except Exception as exc:
            raise HyperfitError(f"cannot read generations {path}: {exc}") from None
        name = condition_name(path, GENERATIONS)
        texts_path = condition_file(path.parent, name, GENERATION_TEXTS)
        texts = read_jsonl(texts_path) if texts_path.is_file() else []
        if name in names:  # the same condition from two runs: tell them apart by run dir
            name = f"{path.parent.name}/{name}"
        names.add(name)
        out.append(Generations(name, path, config, tensors, texts))
    return out


def diversity_metrics(generated: torch.Tensor, train_body: torch.Tensor, settings: EvalSettings,
                      texts: list[str] | None, reference: Sample | None = None,
                      extra: dict | None = None) -> tuple[dict, dict]:
    """(results entry, per-item scores) of one set of continuations: score_text's metrics under their registered
    keys, the counts they rest on and the length curve."""
    scores = score_text(generated, settings, texts=texts, train=train_body, reference=reference, extra=extra)
    entry = {"count": len(generated), "new_tokens": generated.shape[1], **scores.values}
    if texts is not None:
        word_ttr = scores.per_item[registry.key("word_type_token_ratio")]
        entry["texts_with_words"] = sum(v is not None for v in word_ttr)
    entry["length_curve"] = length_curve(generated, settings.lengths, settings.rep_n, settings.bleu_order)
    return entry, scores.per_item


def _blocker_stats(run_path: Path) -> dict | None:
    """The citation blocker's firing counts, as the generate run logged them."""
    for record in reversed(RunDir(run_path).read_metrics()):
        if record.get("event") == "generated":
            return record.get("blocker")
    return None


def _analysis_for(gens: Generations, settings: EvalSettings, cache: dict) -> tuple[str, tuple]:
    """prediction_stats + summarize on [BOS + context + reference], scoring the reference tokens only.
    Models shared by several generate runs are analysed once."""
    from hyperfit_text.model import load_text_model

    model_key = f"{gens.config['model']}" + (f"::{gens.config['gguf_file']}" if gens.config.get("gguf_file") else "")
    key = (model_key, gens.config["train_run"], len(gens.tensors["contexts"]))
    if key not in cache:
        text_model = load_text_model(gens.config["model"], gens.config.get("gguf_file"),
                                     device=str(resolve_device(settings.device)),
                                     placement=load_kwargs(settings.device_map, settings.max_memory, settings.device))
        contexts, references = gens.tensors["contexts"], gens.tensors["references"]
        ids = text_model.with_bos(torch.cat([contexts, references], dim=1))
        # under torchrun each process scores its part of the contexts
        stats = shared_prediction_stats(text_model.model, ids, context_len=1 + contexts.shape[1],
                                        batch_size=settings.batch_size)
        cache[key] = (model_key, (stats, summarize(stats)))
        del text_model
    return cache[key]


def _train_body(gens: Generations, settings: EvalSettings, cache: dict) -> torch.Tensor | None:
    """The hyperfitting data's ids (no BOS) copying is measured against; None (said once) when there is none."""
    path = settings.train_run or gens.config.get("train_run")
    if path is None:
        if not cache.get("said"):
            click.echo(f"note: {gens.name} has no hyperfitting data (generated without a train run): Dataset BLEU "
                       "and the overlap metrics are left out; pass --train-run RUN to score them", err=True)
            cache["said"] = True
        return None
    if path not in cache:
        cache[path] = load_train_tokens(path).ids[:, 1:]  # drop BOS: it is not text a generation could copy
    return cache[path]


def evaluate_runs(paths, settings: EvalSettings, out: str | Path = "runs") -> RunDir:
    """Score every generations file under `paths`; writes results.json, results.md, per_item.json (each per-item
    metric's value per prompt, in prompt order, for paired comparisons), length_curves.png, analysis.{json,png}."""
    load_kwargs(settings.device_map, settings.max_memory, settings.device)  # refused before anything is written
    distributed_eval.start(settings.device)  # under torchrun: join the group before a model is loaded
    generations = load_generations(find_generation_files(paths), settings)
    if settings.quality_model:  # load it now: a model that is not there fails before anything is written
        load_quality_model(settings.quality_model, settings.device)
        if settings.quality_cache is None:
            settings = replace(settings, quality_cache=str(Path(out) / CACHE_FOLDER))
    bodies: dict = {}
    results: dict[str, dict] = {}
    per_item: dict[str, dict] = {}
    analyses: dict[str, tuple] = {}
    cache: dict = {}
    # the held-out human text, cut to the generated length, as the diversity a model should reach
    first = generations[0]
    human = first.tensors["references"][:, :first.tensors["generated"].shape[1]]
    human_texts = [row["reference"] for row in first.texts] if first.texts else None
    for gens in generations:
        body = _train_body(gens, settings, bodies)
        texts = [row["continuation"] for row in gens.texts] if gens.texts else None
        references = gens.tensors["references"][:, :gens.tensors["generated"].shape[1]]
        reference = Sample(tokens=references, texts=[row["reference"] for row in gens.texts] if gens.texts else None,
                           extra=quality_sample_extra(gens.texts, "reference") if gens.texts else {}) \
            if references.shape[1] > 0 else None
        scored, per_item[gens.name] = diversity_metrics(
            gens.tensors["generated"], body, settings, texts, reference,
            quality_sample_extra(gens.texts, "continuation") if gens.texts else None)
        entry = {"file": str(gens.path), "model": gens.config["model"], "gguf_file": gens.config.get("gguf_file"),
                 "decoding": gens.config["decoding"], **({"external": gens.config["external"]}
                                                          if "external" in gens.config else {}),
                 "blocker_stats": _blocker_stats(gens.path.parent) if gens.config["blocker"] else None, **scored}
        if settings.analysis and gens.tensors["references"].shape[1] > 0:  # a prompts file has no references
            model_key, analysis = _analysis_for(gens, settings, cache)
            analyses[model_key] = analysis
            entry["analysis"] = {k: v for k, v in analysis[1].items() if k != "entropy_hist"}
        results[gens.name] = entry
    human_entry, human_items = None, None
    if human.shape[1] >= 2:
        human_entry, human_items = diversity_metrics(human, _train_body(first, settings, bodies), settings, human_texts,
                                                     extra=quality_sample_extra(first.texts, "reference")
                                                     if first.texts else None)
        human_entry = {"model": "human reference", **human_entry}
    run = distributed_eval.shared_run(out, "text-evaluate")
    run.write_config({**distributed_eval.describe(), "inputs": [str(g.path) for g in generations],
                      "settings": vars(settings)}, command="text evaluate")
    if not run.writer:  # every process scored the same; the main process writes
        return run
    write_json(run / RESULTS, {"runs": results, "human_reference": human_entry, "settings": vars(settings),
                               "quality": quality_record(settings, results)})
    write_json(run / PER_ITEM, {"runs": per_item, "human_reference": human_items})
    write_text(run / "results.md", markdown_table(results, human_entry, settings))
    curves = {name: entry["length_curve"] for name, entry in results.items()}
    if human_entry is not None:
        curves["human reference"] = human_entry["length_curve"]
    plot_length_curves(curves, run / "length_curves.png",
                       f"{results[next(iter(results))]['count']} continuations per condition")
    if any("mauve" in entry or "fluency_perplexity" in entry for entry in results.values()):
        plot_quality(results, human_entry, run / QUALITY_PLOT)
    if analyses:
        write_report(analyses, run / ANALYSIS)
        plot_analysis(analyses, run / ANALYSIS_PLOT)
    return run


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.3g}"
    return str(value)


def _model_label(model: str) -> str:
    """RUN/model -> RUN's name; a hub id stays as it is."""
    path = Path(model)
    return path.parent.name if path.name == "model" and path.parent.name else model


def markdown_table(results: dict, human: dict, settings: EvalSettings) -> str:
    """One row per run and the human row; columns are registered metrics (labels and precision from the registry;
    the prediction metrics sit under each entry's "analysis")."""
    params = {"order": settings.bleu_order, "n": settings.rep_n, "k": 1}
    window = f" (last {settings.ttr_last})"
    columns = [(("type_token_ratio",), window), (("word_type_token_ratio",), window), (("self_bleu{order}",), ""),
               (("dataset_bleu{order}",), ""), (("overlap_mean_span", "overlap_max_span"), " mean/max"),
               (("seq_rep_{n}",), ""), (("perplexity",), ""), (("entropy_mean",), ""), (("top{k}_prob_mean",), "")]
    quality = quality_record(settings, results)
    if quality["computed"]:
        columns += [(("mauve",), ""), (("fluency_perplexity",), "")]
    header = ["run", "model"] + [registry.label(names[0], **params) + suffix for names, suffix in columns]
    rows = []
    for name, entry in [*results.items(), *([("human reference", human)] if human else [])]:
        cells = []
        for names, _ in columns:
            metrics = [registry.get(n) for n in names]
            record = [(entry.get("analysis") or {}) if registry.MODEL in m.needs else entry for m in metrics]
            cells.append("/".join(_fmt(registry.read(r, m.name, **params), m.digits) for r, m in zip(record, metrics)))
        rows.append([name, entry.get("gguf_file") or _model_label(entry["model"]), *cells])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    counts = sorted({entry["count"] for entry in results.values()})
    notes = quality["notes"] if quality["computed"] else [f"MAUVE and fluency not computed: {quality['why']}."]
    lines += ["", *notes, f"{'/'.join(map(str, counts))} continuations scored per run; per-prompt scores in "
              f"{PER_ITEM}; length curves (first L tokens) in {RESULTS} and length_curves.png."]
    return "\n".join(lines) + "\n"
