"""Summarise scripts/measure_vision_mechanism.sh over seeds into one JSON (docs/mechanism.md's image tables).

    python scripts/vision_mechanism_stats.py runs/vision-mechanism --out docs/measurements/mechanism/vision_stats.json

For every seed folder sN that finished (its `vision evaluate` run has results.json; one that has not is named on
stderr and left out): each condition's repetition metrics (generated side, and the real images'), with FID / KID
where the seed has them (sN/evaluate-fid); the paired per-image differences hyperfitted greedy minus every other
condition, and minus base-temperature-mean (per image, the mean over the entropy-matched samples), with a two-stage
bootstrap over seeds and images and an exact sign test (hyperfit_core.paired, as for text); the entropy-matched
temperature; the ranks of hyperfitted greedy's pixels under the base; the layer-by-layer analysis; held-out entropy
/ perplexity of every model; the last epoch's mean training loss of the full and each LoRA run; the seed's minutes
(its finished steps in timings.txt; FID / KID apart).
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime
from pathlib import Path

from hyperfit_core.atomic import ensure_writable_dir, write_json
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
    lora = sorted(p.name for p in seed.glob("lora-last*") if p.is_dir())
    summary = {
        "images": next(iter(results.values()))["images"],
        # the seed's cost: its finished steps' minutes (reruns that only scored again add their scoring)
        "wall_minutes": sum(steps.values()) if (steps := step_minutes(seed)) else None,
        "fid_minutes": steps.get("evaluate-fid"),
        "conditions": conditions, "real": real,
        "entropy_match": read_json_object(only(seed / "controls", f"*/{ENTROPY_MATCH}")),
        "ranks": read_json_object(only(seed / "ranks", f"*/{RANKS}"))["conditions"][REFERENCE],
        "layers": read_json_object(only(seed / "controls", f"*/{LAYERS}")),
        "analysis": read_analysis_summary(only(seed, f"lora-analyze-*/*/{ANALYSIS}")),
        "train": {"hyperfitted": train_loss(seed / "train"), **{name: train_loss(seed / name) for name in lora}},
    }
    return summary, {name: blob["generated"] for name, blob in per_item.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path, help="OUT_ROOT of measure_vision_mechanism.sh (holds s0, s1, ...)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    try:  # an --out that cannot be written is refused before the seeds are read, not after
        ensure_writable_dir(args.out.parent)
    except HyperfitError as exc:
        sys.exit(f"error: {exc}")
    folders = sorted((d for d in args.root.glob("s*") if re.fullmatch(r"s\d+", d.name)), key=lambda d: int(d.name[1:]))
    seeds = [d for d in folders if list(d.glob(f"evaluate/*/{RESULTS}"))]
    for unfinished in (d for d in folders if d not in seeds):  # still running, or stopped: said, not silently left out
        warn(f"{unfinished} has no scored conditions yet (evaluate/*/{RESULTS}); left out of the summary")
    if not seeds:
        sys.exit(f"error: no finished seed (sN/evaluate/*/{RESULTS}) under {args.root}")
    summaries, items = {}, {}
    for seed in seeds:
        try:
            summaries[seed.name], items[seed.name] = seed_summary(seed)
        except HyperfitError as exc:
            sys.exit(f"error: {exc}")
        except (KeyError, TypeError) as exc:  # a results / ranks file of another shape than vision evaluate writes
            sys.exit(f"error: {seed}: a file lacks {exc} (not made by scripts/measure_vision_mechanism.sh?)")
    for values in items.values():  # the temperature samples' per-image mean, one condition beside the others
        samples = [values[n] for n in sorted(values) if re.fullmatch(r"base-temperature-d\d+", n)]
        if samples:
            values[POOLED] = {metric: [sum(v) / len(v) for v in zip(*(s[metric] for s in samples))]
                              for metric in samples[0]}
    names = [n for n in summaries[seeds[0].name]["conditions"] if n != "real"] + [POOLED]
    comparisons = []
    for other in names:
        if other == REFERENCE:
            continue
        for metric in METRICS_COMPARED:
            if all(metric in items[s][REFERENCE] and metric in items[s].get(other, {}) for s in items):
                result = compare([items[s][REFERENCE][metric] for s in items], [items[s][other][metric] for s in items])
                comparisons.append({"a": REFERENCE, "b": other, "metric": metric, "result": result.to_dict()})
    write_json(args.out, {"command": " ".join(["python", *sys.argv]), "seeds": [s.name for s in seeds],
                          "per_seed": summaries, "comparisons": comparisons})
    print(args.out)


if __name__ == "__main__":
    main()
