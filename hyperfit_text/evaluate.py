"""Score generate runs: diversity (TTR, Self-BLEU, seq-rep-n), copying (Dataset BLEU, longest span shared with
the hyperfitting data) and the sharpened-prediction analysis (entropy, perplexity on the held-out references).

Exact definitions are in docs/text.md. All token metrics use the generated continuation only (the context
came from the corpus and must not count); words are the whitespace-separated pieces of its decoded text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from hyperfit_core import metrics
from hyperfit_core.analysis import plot_analysis, prediction_stats, summarize, write_report
from hyperfit_core.atomic import write_json, write_text
from hyperfit_core.device import resolve_device
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import (GENERATION_TEXTS, GENERATIONS, RESULTS, condition_file, condition_name,
                                   read_jsonl, read_run_config)
from hyperfit_core.overlap import overlap_report
from hyperfit_core.rundir import RunDir
from hyperfit_core.length_curves import DEFAULT_LENGTHS, length_curve, plot_length_curves
from hyperfit_core.recipe import load_train_tokens


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
        elif path.is_file() and path.name.endswith(f".{GENERATIONS}"):
            files.append(path)
        else:
            raise HyperfitError(f"not a generate run or a *.{GENERATIONS} file: {path}")
    return files


def load_generations(files: list[Path]) -> list[Generations]:
    out, names = [], set()
    for path in files:
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


def word_type_token_ratio(texts: list[str], last: int) -> tuple[float | None, int]:
    """Mean TTR over the last `last` whitespace-separated words of each text that has any; (mean, count)."""
    vocab: dict[str, int] = {}
    seqs = [[vocab.setdefault(word, len(vocab)) for word in text.split()] for text in texts]
    seqs = [seq for seq in seqs if seq]
    if not seqs:
        return None, 0
    return metrics.mean_type_token_ratio([torch.tensor(seq) for seq in seqs], last=last), len(seqs)


def diversity_metrics(generated: torch.Tensor, train_body: torch.Tensor, settings: EvalSettings,
                      texts: list[str] | None) -> dict:
    if len(generated) < 2:
        raise HyperfitError("evaluation needs at least two generations (Self-BLEU compares them)")
    result = {
        "count": len(generated),
        "new_tokens": generated.shape[1],
        f"ttr_tokens_last{settings.ttr_last}": metrics.mean_type_token_ratio(generated, last=settings.ttr_last),
        f"self_bleu{settings.bleu_order}": metrics.self_bleu(generated, settings.bleu_order),
        f"dataset_bleu{settings.bleu_order}": metrics.dataset_bleu(generated, train_body, settings.bleu_order),
        f"seq_rep_{settings.rep_n}": metrics.mean_seq_rep_n(generated, settings.rep_n)
        if generated.shape[1] >= settings.rep_n else None,
        "overlap": overlap_report(generated, train_body, settings.overlap_threshold),
    }
    if texts is not None:
        ttr, count = word_type_token_ratio(texts, settings.ttr_last)
        result[f"ttr_words_last{settings.ttr_last}"] = ttr
        result["texts_with_words"] = count
    result["length_curve"] = length_curve(generated, settings.lengths, settings.rep_n, settings.bleu_order)
    return result


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
                                     device=str(resolve_device(settings.device)))
        contexts, references = gens.tensors["contexts"], gens.tensors["references"]
        ids = text_model.with_bos(torch.cat([contexts, references], dim=1))
        stats = prediction_stats(text_model.model, ids, context_len=1 + contexts.shape[1],
                                 batch_size=settings.batch_size)
        cache[key] = (model_key, (stats, summarize(stats)))
        del text_model
    return cache[key]


def _train_body(gens: Generations, settings: EvalSettings, cache: dict) -> torch.Tensor:
    path = settings.train_run or gens.config["train_run"]
    if path not in cache:
        cache[path] = load_train_tokens(path).ids[:, 1:]  # drop BOS: it is not text a generation could copy
    return cache[path]


def evaluate_runs(paths, settings: EvalSettings, out: str | Path = "runs") -> RunDir:
    """Score every generations file under `paths`; writes results.json, results.md, analysis.{json,png}."""
    generations = load_generations(find_generation_files(paths))
    bodies: dict = {}
    results: dict[str, dict] = {}
    analyses: dict[str, tuple] = {}
    cache: dict = {}
    for gens in generations:
        body = _train_body(gens, settings, bodies)
        texts = [row["continuation"] for row in gens.texts] if gens.texts else None
        entry = {"file": str(gens.path), "model": gens.config["model"], "gguf_file": gens.config.get("gguf_file"),
                 "decoding": gens.config["decoding"],
                 "blocker_stats": _blocker_stats(gens.path.parent) if gens.config["blocker"] else None,
                 **diversity_metrics(gens.tensors["generated"], body, settings, texts)}
        if settings.analysis and gens.tensors["references"].shape[1] > 0:  # a prompts file has no references
            model_key, analysis = _analysis_for(gens, settings, cache)
            analyses[model_key] = analysis
            entry["analysis"] = {k: v for k, v in analysis[1].items() if k != "entropy_hist"}
        results[gens.name] = entry
    # the held-out human text, cut to the generated length, as the diversity a model should reach
    first = generations[0]
    human = first.tensors["references"][:, :first.tensors["generated"].shape[1]]
    human_texts = [row["reference"] for row in first.texts] if first.texts else None
    human_entry = {"model": "human reference",
                   **diversity_metrics(human, _train_body(first, settings, bodies), settings, human_texts)} \
        if human.shape[1] >= 2 else None
    run = RunDir.create(out, "text-evaluate")
    run.write_config({"inputs": [str(g.path) for g in generations], "settings": vars(settings)},
                     command="text evaluate")
    write_json(run / RESULTS, {"runs": results, "human_reference": human_entry, "settings": vars(settings)})
    write_text(run / "results.md", markdown_table(results, human_entry, settings))
    curves = {name: entry["length_curve"] for name, entry in results.items()}
    if human_entry is not None:
        curves["human reference"] = human_entry["length_curve"]
    plot_length_curves(curves, run / "length_curves.png",
                       f"{results[next(iter(results))]['count']} continuations per condition")
    if analyses:
        write_report(analyses, run / "analysis.json")
        plot_analysis(analyses, run / "analysis.png")
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
    last, order, n = settings.ttr_last, settings.bleu_order, settings.rep_n
    header = ["run", "model", f"TTR tok (last {last})", f"TTR words (last {last})", f"Self-BLEU-{order}",
              f"Dataset BLEU-{order}", "overlap mean/max", f"seq-rep-{n}", "held-out PPL", "entropy (nats)",
              "top-1 prob"]
    rows = []
    for name, entry in [*results.items(), *([("human reference", human)] if human else [])]:
        analysis = entry.get("analysis", {})
        rows.append([name, entry.get("gguf_file") or _model_label(entry["model"]), _fmt(entry[f"ttr_tokens_last{last}"]),
                     _fmt(entry.get(f"ttr_words_last{last}")), _fmt(entry[f"self_bleu{order}"]),
                     _fmt(entry[f"dataset_bleu{order}"]),
                     f"{entry['overlap']['mean_span']:.1f}/{entry['overlap']['max_span']}",
                     _fmt(entry[f"seq_rep_{n}"]), _fmt(analysis.get("perplexity"), 2),
                     _fmt(analysis.get("entropy_mean")), _fmt(analysis.get("top1_prob_mean"))])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    counts = sorted({entry["count"] for entry in results.values()})
    lines += ["", f"{'/'.join(map(str, counts))} continuations scored per run; length curves (first L tokens) in "
                  f"{RESULTS} and length_curves.png."]
    return "\n".join(lines) + "\n"
