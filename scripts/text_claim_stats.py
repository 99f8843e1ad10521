#!/usr/bin/env python
"""Paired statistics of the text claim (issue 24, part 1) over the runs scripts/measure_text_claim.sh makes.

ROOT/sSEED/gen-CORPUS/done.txt lists "CONDITION RUN_DIR" a line, each RUN_DIR a `text generate` run; every
condition of one (seed, corpus) continues the same prompts. Each (seed, corpus) is scored by one `text evaluate`
over all its conditions (reused when an evaluation of exactly those generations with these settings exists under
--out), so every metric is computed on the same prompts, and per_item.json gives each prompt's value in order.

Comparisons, A minus B, prompt by prompt: hyperfitted-greedy minus base-top-p, minus base-greedy and minus every
base-temperature[-T*], mechanism condition (base-logit-bias, swap-last1/2/all) or LoRA condition (lora-lastK)
present, and
hyperfitted-greedy-blocked5 minus hyperfitted-greedy; for TTR, word TTR, seq-rep-4 (values as they are: closer to
the human value is better, which the human means beside them say), fluency as its distance to the human value (|ln
PPL - ln PPL of the human continuation of the same prompt|: below 0 means A is closer) and MAUVE (a set-level
number: one difference per seed and corpus). Intervals and p-values come from hyperfit_core.paired: the two-stage
bootstrap over seeds, then prompts (MAUVE: over seeds, and over corpora within a seed when pooled), and the exact
sign test. Per corpus and pooled over corpora (pooled: a seed's prompts of every corpus form one group, since a
seed's models are shared by its corpora). With LoRA runs (LORA=1), the loss each reached and the held-out entropy /
perplexity of every model, per seed ("lora" in the JSON, a table in the markdown).

    nice -n 10 python scripts/text_claim_stats.py runs/text-claim --out /tmp/claim-stats --device cpu \
        --json docs/measurements/text_claim_stats.json --md /tmp/claim-stats/text_claim_stats.md
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import sys
from pathlib import Path

import numpy as np

from hyperfit_core import metric_registry as registry
from hyperfit_core.atomic import write_json, write_text
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import (ANALYSIS, GENERATIONS, PER_ITEM, RESULTS, last_epoch_loss,
                                   read_analysis_summary, read_run_config)
from hyperfit_core.options import COUNT
from hyperfit_core.paired import compare

DONE = "done.txt"
HYPERFITTED, BLOCKED = "hyperfitted-greedy", "hyperfitted-greedy-blocked5"
FIXED_COMPARISONS = [(HYPERFITTED, "base-top-p"), (HYPERFITTED, "base-greedy"), (BLOCKED, HYPERFITTED)]
# scripts/measure_text_claim_temperature.sh names it base-temperature; older runs carried the T in the name
TEMPERATURE = re.compile(r"base-temperature(-T[\d.]+)?\Z")
# issue 24 part 2 (measure_text_claim.sh with MECHANISM=1): compared with hyperfitted greedy when present
MECHANISM = ["base-logit-bias", "swap-last1", "swap-last2", "swap-lastall"]
# ... and with LORA=1: LoRA on the last K blocks (K a number, or all)
LORA = re.compile(r"lora-last(\d+|all)\Z")
# (label, registered metric, how a prompt's value is read): "value", the metric itself; "human distance", its
# log distance to the human continuation of the same prompt; "set", a set-level value
METRICS = [("TTR", "type_token_ratio", "value"), ("word TTR", "word_type_token_ratio", "value"),
           ("seq-rep-4", "seq_rep_{n}", "value"),
           ("fluency: ln-PPL distance to human", "fluency_perplexity", "human distance"),
           ("MAUVE", "mauve", "set")]
POOLED = "pooled"
HUMAN = "human reference"
# set-level values of each condition (results.json keys), summarised over seeds per corpus: where the diversity comes
# from (Self-BLEU, copying of the training windows) and quality, beside TTR
SET_LEVEL = ["type_token_ratio", "seq_rep_4", "self_bleu4", "dataset_bleu4", "overlap_mean_span", "overlap_max_span",
             "mauve", "fluency_perplexity"]


def discover(root: Path) -> dict[tuple[int, str], dict[str, Path]]:
    """{(seed, corpus): {condition: generate run dir}} from every ROOT/sSEED/gen-CORPUS/done.txt (a condition
    listed twice: its last line, the latest run)."""
    found: dict[tuple[int, str], dict[str, Path]] = {}
    for done in sorted(root.glob(f"s*/gen-*/{DONE}")):
        seed_dir, corpus_dir = done.parent.parent.name, done.parent.name
        if not re.fullmatch(r"s\d+", seed_dir):
            continue
        conditions: dict[str, Path] = {}
        for number, line in enumerate(done.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2:
                raise HyperfitError(f"{done}:{number}: expected 'CONDITION RUN_DIR', got {line!r}")
            run = Path(parts[1].strip())
            if not list(run.glob(f"*.{GENERATIONS}")):
                raise HyperfitError(f"{done}:{number}: {run} is not a `text generate` run (no *.{GENERATIONS})")
            conditions[parts[0]] = run.resolve()
        if conditions:
            found[(int(seed_dir[1:]), corpus_dir[len("gen-"):])] = conditions
    if not found:
        raise HyperfitError(f"no sSEED/gen-CORPUS/{DONE} under {root} (runs of scripts/measure_text_claim.sh)")
    return found


def selected(found: dict, seeds: str | None, corpora: str | None) -> dict:
    """The (seed, corpus) cells of `found` that --seeds / --corpora keep; naming one that is not there is an error."""
    keep = {}
    for name, values, index in (("--seeds", seeds, 0), ("--corpora", corpora, 1)):
        if values is None:
            continue
        try:
            wanted = {int(v) if index == 0 else v.strip() for v in values.split(",") if v.strip()}
        except ValueError:
            raise HyperfitError(f"{name} takes comma-separated seed numbers, got {values!r}") from None
        present = {cell[index] for cell in found}
        missing = sorted(str(v) for v in wanted - present)
        if not wanted or missing:
            raise HyperfitError(f"{name} {values}: not among the runs found ({', '.join(map(str, sorted(present)))})")
        keep[index] = wanted
    return {cell: runs for cell, runs in found.items() if all(cell[i] in w for i, w in keep.items())}


def evaluation_for(conditions: dict[str, Path], folder: Path, settings) -> Path:
    """The `text evaluate` run of exactly these generations with these settings under `folder`; made if none."""
    from hyperfit_text.evaluate import evaluate_runs, find_generation_files

    inputs = sorted(str(p) for p in find_generation_files([str(p) for p in conditions.values()]))
    wanted = {k: v for k, v in vars(settings).items() if k not in ("device", "quality_cache", "batch_size")}
    for run in sorted(folder.glob("*-text-evaluate"), reverse=True):
        try:
            config = read_run_config(run)["config"]
        except HyperfitError:
            continue
        had = {k: v for k, v in config.get("settings", {}).items() if k in wanted}
        if sorted(config.get("inputs", [])) == inputs and had == _jsonable(wanted) and (run / PER_ITEM).is_file():
            return run
    return evaluate_runs([str(p) for p in conditions.values()], settings, out=folder).path


def _jsonable(settings: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}


def _check_same_prompts(conditions: dict[str, Path], where: str) -> None:
    from safetensors.numpy import load_file

    contexts = {name: load_file(str(next(run.glob(f"*.{GENERATIONS}"))))["contexts"]
                for name, run in conditions.items()}
    first = next(iter(contexts))
    for name, ids in contexts.items():
        if not np.array_equal(ids, contexts[first]):
            raise HyperfitError(f"{where}: {name} continued other prompts than {first}; pairs need the same")


def scores(evaluation: Path, conditions: dict[str, Path]) -> dict:
    """{condition: {"values": results entry, "items": per-item values}, "human": {...}} of one evaluation."""
    results, per_item = (json.loads((evaluation / name).read_text()) for name in (RESULTS, PER_ITEM))
    by_dir = {Path(entry["file"]).resolve().parent: name for name, entry in results["runs"].items()}
    out = {condition: {"values": results["runs"][by_dir[run]], "items": per_item["runs"][by_dir[run]]}
           for condition, run in conditions.items()}
    out["human"] = {"values": results.get("human_reference") or {}, "items": per_item.get("human_reference") or {}}
    return out


def prompt_values(scored: dict, condition: str, metric: str, kind: str, key: str) -> list[float] | None:
    """One value per prompt (a one-item list for a set-level metric); None when not computed."""
    if kind == "set":
        value = registry.read(scored[condition]["values"], metric, n=4)
        return None if value is None else [value]
    values = scored[condition]["items"].get(key)
    if values is None:
        return None
    if kind == "human distance":
        human = scored["human"]["items"].get(key)
        if human is None:
            return None
        values = [abs(math.log(v) - math.log(h)) for v, h in zip(values, human)]
    return values


def comparison_pairs(conditions: list[str]) -> list[tuple[str, str]]:
    """(A, B) pairs to compare, A minus B: the claim's fixed three, then hyperfitted greedy minus every control
    present (entropy-matched temperature, mechanism conditions, LoRA on the last K blocks)."""
    return FIXED_COMPARISONS + [(HYPERFITTED, c) for c in conditions
                                if TEMPERATURE.match(c) or c in MECHANISM or LORA.match(c)]


def comparisons(table: dict, corpora: list[str], pairs, reps: int) -> list[dict]:
    """Every (pair, metric, corpus | pooled) with the seeds where both conditions exist."""
    rows = []
    for a, b in pairs:
        for label, metric, kind in METRICS:
            key = registry.key(metric, n=4) if "{" in metric else metric
            for scope in [*corpora, POOLED]:
                a_by_seed, b_by_seed, means = {}, {}, {"a": [], "b": [], "human": []}
                for (seed, corpus), scored in sorted(table.items()):
                    if (scope != POOLED and corpus != scope) or a not in scored or b not in scored:
                        continue
                    va, vb = prompt_values(scored, a, metric, kind, key), prompt_values(scored, b, metric, kind, key)
                    if va is None or vb is None or len(va) != len(vb) or None in va or None in vb:
                        continue
                    a_by_seed.setdefault(seed, []).extend(va)
                    b_by_seed.setdefault(seed, []).extend(vb)
                    human = registry.read(scored["human"]["values"], metric, n=4)
                    means["a"].append(registry.read(scored[a]["values"], metric, n=4))
                    means["b"].append(registry.read(scored[b]["values"], metric, n=4))
                    means["human"].append(human)
                row = {"a": a, "b": b, "metric": key, "label": label, "kind": kind, "scope": scope}
                if not a_by_seed:
                    rows.append({**row, "result": None})
                    continue
                seeds = sorted(a_by_seed)
                result = compare([a_by_seed[s] for s in seeds], [b_by_seed[s] for s in seeds], reps=reps)
                rows.append({**row, "result": result.to_dict(), "seeds": seeds,
                             **{f"{k}_mean": _mean(v) for k, v in means.items()}})
    return rows


def set_level(table: dict, corpora: list[str]) -> dict:
    """{corpus: {condition: {key: {"mean", "sd", "values", "seeds"}}}}: each condition's results value per seed and
    its mean and sample sd over seeds (sd None for one seed); the human continuations as HUMAN."""
    out: dict = {}
    for corpus in corpora:
        cells = {seed: scored for (seed, c), scored in sorted(table.items()) if c == corpus}
        names = sorted({n for scored in cells.values() for n in scored if n != "human"}) + [HUMAN]
        for name in names:
            for key in SET_LEVEL:
                by_seed = {seed: scored["human" if name == HUMAN else name]["values"].get(key)
                           for seed, scored in cells.items() if (name == HUMAN or name in scored)}
                by_seed = {seed: v for seed, v in by_seed.items() if v is not None}
                if by_seed:
                    values = list(by_seed.values())
                    out.setdefault(corpus, {}).setdefault(name, {})[key] = {
                        "mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                        "values": values, "seeds": list(by_seed)}
    return out


def pooled_mauve(found: dict, corpora: list[str], settings) -> dict:
    """{scope: {condition: MAUVE record}}: MAUVE of one condition's continuations over every seed (and, pooled, every
    corpus) at once against the human continuations of the same prompts. At 40 texts a set MAUVE swings with the
    prompts drawn; pooling the sets gives it more texts and clusters (features come from the evaluations' cache)."""
    from hyperfit_text.evaluate import find_generation_files, load_generations
    from hyperfit_text.mauve_score import mauve_score
    from hyperfit_text.quality import load_quality_model, scored_texts
    from hyperfit_text.text_features import cached_text_features

    text_model = load_quality_model(settings.quality_model, settings.device)
    out: dict = {}
    for scope in [*corpora, POOLED] if len(corpora) > 1 else corpora:
        names = sorted({c for (seed, corpus), runs in found.items() if scope in (corpus, POOLED) for c in runs})
        for name in names:
            generated, human, cells = [], [], []
            for (seed, corpus), runs in sorted(found.items()):
                if scope in (corpus, POOLED) and name in runs:
                    (gens,) = load_generations(find_generation_files([str(runs[name])]))
                    generated += scored_texts(gens.texts, "continuation")
                    human += scored_texts(gens.texts, "reference")
                    cells.append(f"s{seed}/{corpus}")
            record = mauve_score(cached_text_features(text_model, generated, settings.quality_cache),
                                 cached_text_features(text_model, human, settings.quality_cache),
                                 num_buckets=settings.mauve_clusters)
            out.setdefault(scope, {})[name] = {**record, "cells": cells}
    return out


def lora_summary(root: Path, seeds: list[int]) -> dict:
    """{sSEED: {"train": {run: {"epochs", "mean_loss"}}, "analysis": {model: held-out numbers}}} for every seed with
    LoRA runs (measure_text_claim.sh LORA=1): the loss each LoRA run and the full run reached (last epoch's mean)
    and the held-out entropy / perplexity of the base, the hyperfitted and every LoRA model (the analyses of every
    set of K merged: base and hyperfitted are the same models in each)."""
    out = {}
    for seed in seeds:
        lora = root / f"s{seed}" / "lora"
        runs = {d.name: only_run(d / "train") for d in sorted(lora.glob("lora-last*")) if LORA.match(d.name)}
        runs = {name: run for name, run in runs.items() if run is not None}
        if not runs:
            continue
        analysis: dict = {}
        for path in sorted(lora.glob(f"analyze-*/*/{ANALYSIS}")):
            analysis.update(read_analysis_summary(path))
        full = only_run(root / f"s{seed}" / "train")
        out[f"s{seed}"] = {"train": {**({"hyperfitted": last_epoch_loss(full)} if full else {}),
                                     **{name: last_epoch_loss(run) for name, run in runs.items()}},
                           "analysis": analysis}
    return out


def only_run(folder: Path) -> Path | None:
    """The train run under folder that saved its model (the script's runs), None when there is none yet."""
    found = sorted(p.parent for p in folder.glob("*/model"))
    return found[0] if found else None


def _mean(values) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def markdown(rows: list[dict], corpora: list[str], mauve_pooled: dict | None = None, lora: dict | None = None) -> str:
    scopes = [*corpora, POOLED]
    lines = []
    for a, b in dict.fromkeys((r["a"], r["b"]) for r in rows):
        lines += [f"### {a} minus {b}", "", "| metric | " + " | ".join(scopes) + " |",
                  "|---" * (1 + len(scopes)) + "|"]
        for label in dict.fromkeys(r["label"] for r in rows if (r["a"], r["b"]) == (a, b)):
            cells = []
            for scope in scopes:
                (row,) = [r for r in rows if (r["a"], r["b"], r["label"], r["scope"]) == (a, b, label, scope)]
                res = row["result"]
                cells.append("-" if res is None else
                             f"{res['mean']:+.3f} [{res['low']:+.3f}, {res['high']:+.3f}] p={res['sign_p']:.2g} "
                             f"(n={res['prompts']}, {res['seeds']} seeds)")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["A minus B: mean difference, 95% two-stage bootstrap interval (seeds, then prompts), exact sign-test "
              "p, n pairs (MAUVE: one per seed and corpus). Fluency: distance to the human value, below 0 = A "
              "closer. Condition and human means are in the JSON."]
    if mauve_pooled:
        scopes = list(mauve_pooled)
        lines += ["", "### MAUVE over the pooled texts", "", "| condition | " + " | ".join(scopes) + " |",
                  "|---" * (1 + len(scopes)) + "|"]
        for name in dict.fromkeys(n for by_name in mauve_pooled.values() for n in by_name):
            cells = [f"{r['mauve']:.3f} ({r['mauve_texts']} texts, {r['mauve_clusters']} clusters)"
                     if (r := mauve_pooled[scope].get(name)) else "-" for scope in scopes]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if lora:
        lines += ["", "### LoRA on the last K blocks: loss reached and held-out numbers", "",
                  "| seed | model | epochs | last epoch's mean loss | held-out perplexity | held-out entropy |",
                  "|---|---|---|---|---|---|"]
        for seed, record in lora.items():
            for name in dict.fromkeys([*record["analysis"], *record["train"]]):
                train, held_out = record["train"].get(name, {}), record["analysis"].get(name, {})
                cells = [train.get("epochs"), train.get("mean_loss"), held_out.get("perplexity"),
                         held_out.get("entropy_mean")]
                lines.append(f"| {seed} | {name} | " + " | ".join(
                    "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)) for v in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    from hyperfit_text.evaluate import EvalSettings
    from hyperfit_text.quality import choose_quality_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="OUT_ROOT of scripts/measure_text_claim.sh (holds sSEED/)")
    parser.add_argument("--out", type=Path, required=True, help="where the evaluations go (reused when present)")
    parser.add_argument("--quality-model", default=None, help="as `text evaluate --quality-model`")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--ttr-last", type=COUNT, default=96)
    parser.add_argument("--reps", type=COUNT, default=10000, help="bootstrap replicates")
    parser.add_argument("--seeds", default=None, help="only these seeds, comma-separated (default: every seed found)")
    parser.add_argument("--corpora", default=None,
                        help="only these corpora, comma-separated (default: every corpus found); e.g. MAUVE and "
                             "fluency on one corpus when scoring every corpus costs too much")
    parser.add_argument("--json", type=Path, default=None, help="default OUT/text_claim_stats.json")
    parser.add_argument("--md", type=Path, default=None, help="default OUT/text_claim_stats.md")
    args = parser.parse_args(argv)
    try:
        found = selected(discover(args.root), args.seeds, args.corpora)
        scorer, skipped = choose_quality_model(args.quality_model)
        if scorer:
            from hyperfit_text.quality import load_quality_model
            load_quality_model(scorer, args.device)  # a named model that is not there fails before anything runs
        settings = EvalSettings(ttr_last=args.ttr_last, analysis=False, device=args.device, quality_model=scorer,
                                quality_skipped=skipped, quality_cache=str(args.out / "text-quality-cache"))
        # LoRA runs read first: a broken file there is refused before the evaluations, not after them
        lora = lora_summary(args.root, sorted({s for s, _ in found}))
        table, evaluations = {}, {}
        for (seed, corpus), conditions in sorted(found.items()):
            _check_same_prompts(conditions, f"s{seed}/gen-{corpus}")
            evaluation = evaluation_for(conditions, args.out / f"s{seed}" / f"gen-{corpus}", settings)
            evaluations[f"s{seed}/{corpus}"] = str(evaluation)
            table[(seed, corpus)] = scores(evaluation, conditions)
        corpora = sorted({corpus for _, corpus in found})
        mauve_pooled = pooled_mauve(found, corpora, settings) if scorer else None
    except HyperfitError as exc:
        sys.exit(f"error: {exc}")
    conditions = sorted({c for scored in found.values() for c in scored})
    rows = comparisons(table, corpora, comparison_pairs(conditions), args.reps)
    record = {"command": " ".join(shlex.quote(a) for a in ["python", "scripts/text_claim_stats.py",
                                                           *(sys.argv[1:] if argv is None else argv)]),
              "root": str(args.root), "seeds": sorted({s for s, _ in found}), "corpora": corpora,
              "conditions": conditions, "evaluations": evaluations,
              "quality": {"model": scorer, "why_not": skipped}, "reps": args.reps, "comparisons": rows,
              "set_level": set_level(table, corpora),
              "pooled_mauve": mauve_pooled,
              "lora": lora}
    report = markdown(rows, corpora, mauve_pooled, record["lora"])
    write_json(args.json or args.out / "text_claim_stats.json", record)
    write_text(args.md or args.out / "text_claim_stats.md", report)
    print(report)
    return record


if __name__ == "__main__":
    main()
