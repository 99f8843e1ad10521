"""Summarise scripts/measure_vision_mechanism.sh over seeds into one JSON (docs/mechanism.md's image tables).

    python scripts/vision_mechanism_stats.py runs/vision-mechanism --out docs/measurements/mechanism/vision_stats.json

For every seed folder sN that finished (its `vision evaluate` run has results.json; one that has not is named on
stderr and left out): each condition's repetition metrics (generated side, and the real images'), with FID / KID
where the seed has them (sN/evaluate-fid); the paired per-image differences hyperfitted greedy minus every other
condition, and minus base-temperature-mean (per image, the mean over the entropy-matched samples), with a two-stage
bootstrap over seeds and images and an exact sign test (hyperfit_core.paired, as for text); the entropy-matched
temperature; the ranks of hyperfitted greedy's pixels under the base; the layer-by-layer analysis; held-out entropy
/ perplexity of every model; the last epoch's mean training loss of the full and each LoRA run; the seed's minutes
(its finished steps in timings.txt; FID / KID apart; each step's too).

Runs do not outlive a session here, so `--keep DIR` keeps each seed as DIR/sN.json.gz (its summary and its
per-image values of the compared metrics, to 6 decimals) and reads back the seeds ROOT no longer holds: a later
session adds seeds without the earlier runs. `--add-summaries OLD_STATS` takes the per-seed summaries of an earlier
--out for seeds whose per-image values are gone (kept in DIR with none). Every seed joins the per-seed means and
`seed_differences` (hyperfitted greedy minus each condition, per seed, from the seed's means); only seeds with
per-image values join the image-level `comparisons`.

    python scripts/vision_mechanism_stats.py runs/vision-mechanism-c \\
        --keep docs/measurements/mechanism/vision_c_seeds --out docs/measurements/mechanism/vision_stats_c.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import sys
import zlib
from datetime import datetime
from pathlib import Path

from hyperfit_core.atomic import atomic_path, ensure_writable_dir, write_json
from hyperfit_core.errors import HyperfitError, warn
from hyperfit_core.formats import (ANALYSIS, ENTROPY_MATCH, LAYERS, METRICS, PER_ITEM, RANKS, RESULTS,
                                   last_epoch_loss, read_analysis_summary, read_json_object)
from hyperfit_core.paired import compare

METRICS_COMPARED = ("seq_rep_4", "type_token_ratio", "row_repetition", "patch_duplication",
                    "compression_ratio_vs_real", "overlap_mean_span")
REFERENCE = "hyperfitted-greedy"
FID_KEYS = ("fid", "kid_mean", "kid_std")  # what `vision evaluate` scores with Inception features
POOLED = "base-temperature-mean"  # per image, the mean over the decode seeds of the entropy-matched samples


def only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        sys.exit(f"error: expected one {pattern} in {folder}, found {len(found)}")
    return found[0]


def train_loss(train_dir: Path) -> dict:
    return last_epoch_loss(only(train_dir, f"*/{METRICS}").parent)


def step_minutes(seed: Path) -> dict[str, float]:
    """Minutes of each finished step in timings.txt ("STEP start" or "STEP resume" to the next "STEP done" or "STEP
    stopped", the stamp of the checkpoint a stopped training resumes from); a step stopped with nothing kept, and the
    time between runs of the script, are not counted. A step done twice counts twice."""
    lines = (seed / "timings.txt").read_text().splitlines() if (seed / "timings.txt").is_file() else []
    started: dict[str, datetime] = {}
    minutes: dict[str, float] = {}
    for line in lines:  # "TIME STEP... start|done [RUN DIR] load=L"
        words = line.split()
        mark = next((i for i, word in enumerate(words) if word in ("start", "resume", "done", "stopped")), None)
        if mark is None or mark < 2:
            continue
        step, stamp = " ".join(words[1:mark]), datetime.fromisoformat(words[0])
        if words[mark] in ("start", "resume"):
            started[step] = stamp
        elif step in started:  # a checkpoint saved before this run's start (stopped again before the next) adds 0
            kept = max(0.0, (stamp - started.pop(step)).total_seconds() / 60)
            minutes[step] = minutes.get(step, 0.0) + kept
    return minutes


def seed_summary(seed: Path) -> tuple[dict, dict]:
    """(the seed's summary, its per-image values {condition: {metric: [...]}})."""
    evaluate = only(seed / "evaluate", f"*/{RESULTS}").parent
    results = read_json_object(evaluate / RESULTS)
    per_item = read_json_object(evaluate / PER_ITEM)
    conditions = {}
    for name, blob in results.items():
        values = {k: v["generated"] for k, v in blob.get("repetition", {}).items()}
        values.update({k: v for k, v in blob.items() if k.startswith("overlap") or k in FID_KEYS})
        conditions[name] = values
    fid = sorted(seed.glob(f"evaluate-fid/*/{RESULTS}"))  # FID / KID of the conditions FID_CONDITIONS named
    for name, blob in (read_json_object(fid[0]) if fid else {}).items():
        if name in conditions:
            conditions[name].update({k: v for k, v in blob.items() if k in FID_KEYS})
    real = {k: v["real"] for k, v in next(iter(results.values()))["repetition"].items()}
    # the LoRA runs whose condition was scored (one still training, for a K a rerun added, is not yet the seed's)
    lora = sorted(p.name for p in seed.glob("lora-last*") if p.is_dir() and p.name in conditions)
    summary = {
        "images": next(iter(results.values()))["images"],
        # the seed's cost: its finished steps' minutes (reruns that only scored again add their scoring)
        "wall_minutes": sum(steps.values()) if (steps := step_minutes(seed)) else None,
        "fid_minutes": steps.get("evaluate-fid"),
        "step_minutes": steps,  # each finished step's, e.g. "train lora-last1"
        "conditions": conditions, "real": real,
        "entropy_match": read_json_object(only(seed / "controls", f"*/{ENTROPY_MATCH}")),
        "ranks": read_json_object(only(seed / "ranks", f"*/{RANKS}"))["conditions"][REFERENCE],
        "layers": read_json_object(only(seed / "controls", f"*/{LAYERS}")),
        "analysis": read_analysis_summary(only(seed, f"lora-analyze-*/*/{ANALYSIS}")),
        "train": {"hyperfitted": train_loss(seed / "train"), **{name: train_loss(seed / name) for name in lora}},
    }
    return summary, {name: blob["generated"] for name, blob in per_item.items()}


KEPT_DECIMALS = 6  # per-image values kept: exact enough for 3-decimal means, a third of the size of full floats


def kept_items(items: dict) -> dict:
    """The per-image values the comparisons use (and --keep writes), rounded once so a rerun from the kept files
    gives the same numbers as the run that wrote them."""
    return {name: {metric: [round(v, KEPT_DECIMALS) for v in values[metric]]
                   for metric in METRICS_COMPARED if metric in values} for name, values in items.items()}


def seed_number(name: str) -> int:
    return int(name[1:])


def scored_lora_only(summary: dict) -> dict:
    """An older summary under seed_summary's rule: a LoRA run's training loss only where its condition was scored
    (summaries written before the rule have the partial loss of a K still training)."""
    train = summary.get("train")
    if isinstance(train, dict):
        conditions = summary.get("conditions", {})
        summary = {**summary, "train": {k: v for k, v in train.items() if not k.startswith("lora-") or k in conditions}}
    return summary


def write_kept(path: Path, summary: dict, items: dict | None) -> None:
    """One seed as gzipped JSON (a fifth of the plain size; mtime 0, so the same seed gives the same bytes)."""
    text = json.dumps({"summary": summary, "items": items}, sort_keys=True, separators=(",", ":"))
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(text.encode(), mtime=0))


def read_kept(folder: Path | None) -> dict[str, tuple[dict, dict | None]]:
    """{seed: (summary, per-image values or None)} of DIR/sN.json.gz."""
    kept = {}
    for path in sorted(folder.glob("s*.json.gz")) if folder else []:
        if not re.fullmatch(r"s\d+\.json\.gz", path.name):
            continue
        try:
            blob = json.loads(gzip.decompress(path.read_bytes()))
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            raise HyperfitError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        if not isinstance(blob, dict) or not isinstance(blob.get("summary"), dict) or "items" not in blob:
            raise HyperfitError(f"{path} is not a kept seed (summary and items; written by --keep)")
        kept[path.name.split(".")[0]] = (blob["summary"], blob["items"])
    return kept


def number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def temperature_samples(conditions: dict) -> list:
    """The entropy-matched temperature's decode seeds (base-temperature-dD), in name order: what POOLED averages."""
    return [conditions[n] for n in sorted(conditions) if re.fullmatch(r"base-temperature-d\d+", n)]


def condition_means(summary: dict) -> dict[str, dict]:
    """The seed's mean of each metric per condition, with base-temperature-mean: the mean over the decode seeds."""
    means = {name: values for name, values in summary["conditions"].items() if name != "real"}
    samples = temperature_samples(means)
    if samples:
        shared = set.intersection(*(set(s) for s in samples))
        means[POOLED] = {m: sum(s[m] for s in samples) / len(samples) for m in shared
                         if all(number(s[m]) for s in samples)}
    return means


def seed_differences(summaries: dict) -> list[dict]:
    """Hyperfitted greedy minus each condition, seed by seed from the seeds' means (the mean of the paired
    per-image differences, as every condition of a seed completes the same images): every seed joins, those
    kept without per-image values too."""
    means = {seed: condition_means(summary) for seed, summary in summaries.items()}
    names = sorted({n for m in means.values() for n in m} - {REFERENCE})
    rows = []
    for other in names:
        for metric in METRICS_COMPARED:
            per_seed = {seed: m[REFERENCE][metric] - m[other][metric] for seed, m in means.items()
                        if number(m.get(REFERENCE, {}).get(metric)) and number(m.get(other, {}).get(metric))}
            if per_seed:
                values = list(per_seed.values())
                rows.append({"a": REFERENCE, "b": other, "metric": metric, "per_seed": per_seed, "seeds": len(values),
                             "mean": statistics.mean(values),
                             "sd": statistics.stdev(values) if len(values) > 1 else None,
                             "negative": sum(v < 0 for v in values), "positive": sum(v > 0 for v in values)})
    return rows


def image_comparisons(items: dict) -> list[dict]:
    """Hyperfitted greedy minus each condition image by image, two-stage bootstrap over the seeds with per-image
    values that scored both (hyperfit_core.paired; `image_seeds` says which: a LoRA K run on one seed is compared on
    that seed, not left out because another seed has no such run)."""
    items = {seed: dict(values) for seed, values in items.items()}  # the kept values stay as they were
    for values in items.values():  # the temperature samples' per-image mean, one condition beside the others
        samples = temperature_samples(values)
        if samples:
            values[POOLED] = {metric: [sum(v) / len(v) for v in zip(*(s[metric] for s in samples))]
                              for metric in samples[0]}
    names = sorted({n for values in items.values() for n in values} - {REFERENCE})
    comparisons = []
    for other in names:
        for metric in METRICS_COMPARED:
            have = [s for s in items if metric in items[s].get(REFERENCE, {}) and metric in items[s].get(other, {})]
            if have:
                result = compare([items[s][REFERENCE][metric] for s in have], [items[s][other][metric] for s in have])
                comparisons.append({"a": REFERENCE, "b": other, "metric": metric, "image_seeds": have,
                                    "result": result.to_dict()})
    return comparisons


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path, help="OUT_ROOT of measure_vision_mechanism.sh (holds s0, s1, ...)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--keep", type=Path, help="folder of one sN.json.gz per seed: written for the seeds under ROOT, "
                   "read for the others")
    p.add_argument("--add-summaries", type=Path, metavar="OLD_STATS", help="an earlier --out: its per-seed summaries "
                   "for seeds neither under ROOT nor kept (no per-image values); needs --keep")
    args = p.parse_args()
    if args.add_summaries and not args.keep:
        sys.exit("error: --add-summaries needs --keep (the seeds it adds are kept there, without per-image values)")
    try:  # an --out that cannot be written is refused before the seeds are read, not after
        for folder in (args.out.parent, *([args.keep] if args.keep else [])):
            ensure_writable_dir(folder)
    except HyperfitError as exc:
        sys.exit(f"error: {exc}")
    folders = sorted((d for d in args.root.glob("s*") if re.fullmatch(r"s\d+", d.name)),
                     key=lambda d: seed_number(d.name))
    seeds = [d for d in folders if list(d.glob(f"evaluate/*/{RESULTS}"))]
    for unfinished in (d for d in folders if d not in seeds):  # still running, or stopped: said, not silently left out
        warn(f"{unfinished} has no scored conditions yet (evaluate/*/{RESULTS}); left out of the summary")
    summaries, items, fresh = {}, {}, set()
    try:
        for seed in seeds:
            try:
                summaries[seed.name], seed_items = seed_summary(seed)
            except (KeyError, TypeError) as exc:  # a results / ranks file of another shape than vision evaluate writes
                sys.exit(f"error: {seed}: a file lacks {exc} (not made by scripts/measure_vision_mechanism.sh?)")
            items[seed.name] = kept_items(seed_items)
            fresh.add(seed.name)
        for name, (summary, seed_items) in read_kept(args.keep).items():
            if name not in summaries:
                summaries[name] = summary
                if seed_items is not None:
                    items[name] = seed_items
        if args.add_summaries:
            for name, summary in read_json_object(args.add_summaries).get("per_seed", {}).items():
                if not re.fullmatch(r"s\d+", name) or not isinstance(summary, dict) or "conditions" not in summary:
                    raise HyperfitError(f"{args.add_summaries}: per_seed/{name} is not a seed's summary "
                                        "(written by this script's --out)")
                if name not in summaries:
                    summaries[name] = scored_lora_only(summary)
                    fresh.add(name)
    except HyperfitError as exc:
        sys.exit(f"error: {exc}")
    if not summaries:
        sys.exit(f"error: no finished seed (sN/evaluate/*/{RESULTS}) under {args.root}"
                 + (f" nor kept in {args.keep}" if args.keep else ""))
    order = sorted(summaries, key=seed_number)
    summaries = {name: summaries[name] for name in order}
    items = {name: items[name] for name in order if name in items}
    for name in sorted(fresh, key=seed_number) if args.keep else []:
        write_kept(args.keep / f"{name}.json.gz", summaries[name], items.get(name))
    write_json(args.out, {"command": " ".join(["python", *sys.argv]), "seeds": order, "image_seeds": list(items),
                          "per_seed": summaries, "comparisons": image_comparisons(items),
                          "seed_differences": seed_differences(summaries)})
    print(args.out)


if __name__ == "__main__":
    main()
