"""The first measured hyperfitting numbers on real images (issue: docs/results.md).

Base model: assets/fashion-base (pretrained by scripts/pretrain_base.py). For each seed: hyperfit a copy on
N random Fashion-MNIST training images, complete the top-25% prefix of held-out test images under the
paper's conditions (base greedy, base top-p, hyperfitted greedy, hyperfitted greedy + blocker), score FID,
KID, patch repetition and overlap (hyperfit_vision.benchmark), and the sharpened-prediction statistics on the
held-out images (entropy, top-1 probability, perplexity). Aggregates mean and spread over seeds.

    python scripts/measure_hyperfitting.py --seeds 0 1 2 --num-train 2000 --num-test 1000 --out runs/measure
    python scripts/measure_hyperfitting.py --lr-sweep 1e-6 1e-5 1e-4 3e-4 --num-train 256 --epochs 5   # sweep

Seeds are independent, so they can run as separate processes (one core each: --threads 1, else every process
starts one thread per core and they slow each other ~4x) and be merged afterwards:
    python scripts/measure_hyperfitting.py --seeds 0 --threads 1 --out runs/full-s0    # ... and s1, s2 in parallel
    python scripts/measure_hyperfitting.py --merge runs/full-s0 runs/full-s1 runs/full-s2 --out runs/full
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from hyperfit_core.analysis import mean_token_loss, prediction_stats, summarize
from hyperfit_core.atomic import atomic_path, write_json, write_text
from hyperfit_core.options import COUNT, NON_NEGATIVE, POSITIVE, PRECISIONS, SEED
from hyperfit_core.formats import RUN_CONFIG
from hyperfit_core.recipe import TrainSpec, load_train_tokens
from hyperfit_core.rundir import RunDir
from hyperfit_core.train import LR_SCHEDULES, TrainConfig
from hyperfit_vision.benchmark import paper_conditions, run_benchmark
from hyperfit_vision.scoring import TABLE, image_value
from hyperfit_vision.data import ImageSource, load_torchvision_dataset
from hyperfit_vision.model import load_imagegpt
from hyperfit_vision.training import image_sequences, train_images

BASE = Path(__file__).resolve().parents[1] / "assets" / "fashion-base"


def _ordered(names) -> list[str]:
    """The paper's order, real images last (JSON round trips sort the keys)."""
    order = [c.name for c in paper_conditions()] + ["real"]
    return sorted(names, key=lambda n: order.index(n) if n in order else len(order))


def hyperfit_seed(args, seed: int, lr: float, test_ids, out: Path) -> tuple[dict, dict]:
    """Hyperfit (or reuse, or resume) the run of one seed and lr, then measure it."""
    base, _ = load_imagegpt(str(BASE))
    path = out / f"seed{seed}-lr{lr:g}"
    schedule = {"epochs": args.epochs, "target_loss": args.target_loss}
    if (path / RUN_CONFIG).is_file() and (args.resume_training or not (path / "model").is_dir()):
        # an interrupted run continues from its last checkpoint; --resume-training also lengthens a finished one
        train_images(None, resume=path, extend=schedule if args.resume_training else None)
    elif not (path / "model").is_dir():
        start = args.start_from or str(BASE)
        spec = TrainSpec(model=start, data=vars(ImageSource("fashion-mnist", args.data_root, "train")),
                         train=TrainConfig(lr=lr, batch_size=args.batch_size, seed=seed, progress=False,
                                           lr_schedule=args.lr_schedule, warmup_steps=args.warmup_steps,
                                           precision=args.precision, **schedule),
                         num_train=args.num_train)
        train_images(spec, at=path, command=" ".join(sys.argv))
    run = RunDir(path)
    fitted, _ = load_imagegpt(str(path / "model"))
    data = load_train_tokens(path)
    last_epoch = [r for r in run.read_metrics() if r["event"] == "epoch"][-1]
    stats = {name: summarize(prediction_stats(m.model, test_ids, args.context))
             for name, m in (("base", base), ("hyperfit", fitted))}
    stats["train_loss"] = last_epoch["mean_loss"]  # the last epoch's mean of step losses: the weights moved during it
    stats["epochs"] = last_epoch["epoch"]  # below --epochs when --target-loss stopped the run
    stats["train_loss_end"] = mean_token_loss(fitted.model, data.ids, batch_size=250)  # the final weights' loss
    if args.no_completions:
        return {}, stats
    conditions = paper_conditions(seed)
    held = test_pool_images(args)
    results = run_benchmark({"base": base, "hyperfit": fitted}, held, conditions, run, train_tokens=data,
                            fid=not args.no_fid, batch_size=args.decode_batch)
    return results, stats


def test_pool_images(args):
    return load_torchvision_dataset("fashion-mnist", args.data_root, "test").first(args.num_test, "test images")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="data")
    p.add_argument("--seeds", type=SEED, nargs="+", default=[0, 1, 2])
    p.add_argument("--lr", type=POSITIVE, default=1e-4)
    p.add_argument("--lr-sweep", type=POSITIVE, nargs="*", default=None)
    p.add_argument("--num-train", type=COUNT, default=2000)
    p.add_argument("--num-test", type=COUNT, default=1000)
    p.add_argument("--epochs", type=COUNT, default=20)
    p.add_argument("--batch-size", type=COUNT, default=8)
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant",
                   help="constant (the paper's), or linear / cosine decay to zero at the last epoch.")
    p.add_argument("--warmup-steps", type=NON_NEGATIVE, default=0, help="Steps of linear warm-up to --lr.")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="Training arithmetic: bf16 autocast with fp32 master weights (on CUDA the fast path; on this "
                        "project's CPU no faster than fp32: bench/results/speed_cpu.json); auto = bf16 on CUDA, "
                        "fp32 on CPU.")
    p.add_argument("--target-loss", type=POSITIVE, default=None,
                   help="Stop hyperfitting once an epoch's mean training loss is below this (--epochs is the cap).")
    p.add_argument("--start-from", default=None, metavar="MODEL_DIR",
                   help="Hyperfit this model instead of the base (e.g. an earlier run's model/, to continue it under "
                        "another schedule); the same images are drawn (same --seeds and --num-train), and the base "
                        "conditions still use the base.")
    p.add_argument("--resume-training", action="store_true",
                   help="Continue an earlier run of the same seed/lr/--out from its last epoch checkpoint up to "
                        "--epochs (or --target-loss); the constant-lr schedule makes this the same as one long run "
                        "(a decaying schedule cannot be lengthened).")
    p.add_argument("--threads", type=COUNT, default=None,
                   help="torch CPU threads of this process (default: torch's, one per core); 1 when seeds run side by side.")
    p.add_argument("--decode-batch", type=COUNT, default=250)
    p.add_argument("--context", type=COUNT, default=65, help="Prefix tokens (SOS + 4 rows) for prediction stats.")
    p.add_argument("--no-fid", action="store_true")
    p.add_argument("--no-completions", action="store_true")
    p.add_argument("--out", default="runs/measure")
    p.add_argument("--merge", nargs="+", default=None, metavar="DIR",
                   help="Only aggregate the summary.json of earlier runs (e.g. one process per seed) into --out.")
    p.add_argument("--compare", nargs="+", default=None, metavar="LABEL=SUMMARY_JSON",
                   help="Only print one markdown row per merged summary.json: how far each setting was trained "
                        "against what its hyperfitted greedy completions and held-out predictions show.")
    args = p.parse_args()
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"error: --threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.merge:
        merge_summaries([Path(d) for d in args.merge], Path(args.out))
        return
    if args.compare:
        print(compare_table(args.compare))
        return
    base, _ = load_imagegpt(str(BASE))
    test_ids = image_sequences(test_pool_images(args), base).ids
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"args": vars(args), "runs": {}}
    plan = [(args.seeds[0], lr) for lr in args.lr_sweep] if args.lr_sweep else [(s, args.lr) for s in args.seeds]
    for seed, lr in plan:
        results, stats = hyperfit_seed(args, seed, lr, test_ids, out)
        summary["runs"][f"seed{seed}-lr{lr:g}"] = {"results": results, "prediction": stats, "seed": seed, "lr": lr}
        write_json(out / "summary.json", summary)
        print(json.dumps({"seed": seed, "lr": lr, "train_loss": stats["train_loss"],
                          "entropy": {k: stats[k]["entropy_mean"] for k in ("base", "hyperfit")},
                          "ppl": {k: stats[k]["perplexity"] for k in ("base", "hyperfit")}}), flush=True)
    write_text(out / "summary.md", aggregate_table(summary))
    plot_aggregate(summary, out / "summary.png")
    print((out / "summary.md").read_text())


def merge_summaries(dirs: list[Path], out: Path) -> None:
    summaries = []
    for d in dirs:
        path = d / "summary.json"
        if not path.is_file():
            raise SystemExit(f"error: {path} does not exist (has that run finished?)")
        summaries.append(json.loads(path.read_text()))
    merged = {"args": summaries[0]["args"], "merged_from": [str(d) for d in dirs], "runs": {}}
    for summary in summaries:
        for name, run in summary["runs"].items():
            if name in merged["runs"]:
                raise SystemExit(f"error: run {name} appears in more than one of {', '.join(map(str, dirs))}")
            merged["runs"][name] = run
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", merged)
    write_text(out / "summary.md", aggregate_table(merged))
    plot_aggregate(merged, out / "summary.png")
    print((out / "summary.md").read_text())


def plot_aggregate(summary: dict, path: Path) -> None:
    """One bar per condition and metric: mean over seeds, error bar = standard deviation, grey = real images."""
    runs = [r for r in summary["runs"].values() if r["results"]]
    if not runs:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = _ordered(runs[0]["results"])
    plotted = [key for key in TABLE if key != "kid_mean"]  # KID tracks FID; one panel is enough
    fig, axes = plt.subplots(1, len(plotted), figsize=(3 * len(plotted), 3.6))
    for ax, key in zip(axes, plotted):
        means, errs = [], []
        for name in names:
            values = [v for v in (image_value(r["results"][name], key) for r in runs) if v is not None]
            means.append(statistics.mean(values) if values else 0.0)
            errs.append(statistics.stdev(values) if len(values) > 1 else 0.0)
        ax.bar(range(len(names)), means, yerr=errs, capsize=3,
               color=["grey" if n == "real" else "tab:blue" for n in names])
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        ax.set_title(key, fontsize=10)
    fig.suptitle(f"mean ± sd over {len(runs)} seeds")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _mean_spread(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}"


def aggregate_table(summary: dict) -> str:
    runs = list(summary["runs"].values())
    lines = []
    if runs and runs[0]["results"]:
        names = _ordered(runs[0]["results"])
        lines += ["| condition | " + " | ".join(TABLE) + " |", "|---" * (len(TABLE) + 1) + "|"]
        for name in names:
            cells = [_mean_spread([image_value(r["results"][name], k) for r in runs]) for k in TABLE]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["| model | train loss (last epoch's mean) | train loss (final weights) | entropy (nats) | top-1 prob | "
              "top-1 acc | held-out ppl |", "|---|---|---|---|---|---|---|"]
    for model in ("base", "hyperfit"):
        cells = [_mean_spread([r["prediction"].get(key) for r in runs]) if model == "hyperfit" else "-"
                 for key in ("train_loss", "train_loss_end")]
        for key in ("entropy_mean", "top1_prob_mean", "top1_accuracy", "perplexity"):
            cells.append(_mean_spread([r["prediction"][model][key] for r in runs]))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines.append("\nruns: " + ", ".join(f"seed {r['seed']} lr {r['lr']:g}" for r in runs))
    return "\n".join(lines) + "\n"


def _final_loss(runs) -> str:
    """The final weights' training loss; summaries older than that statistic have the last epoch's mean."""
    if all("train_loss_end" in r["prediction"] for r in runs):
        return _mean_spread([r["prediction"]["train_loss_end"] for r in runs]) + " (final weights)"
    return _mean_spread([r["prediction"]["train_loss"] for r in runs]) + " (last epoch's mean)"


def compare_table(pairs: list[str]) -> str:
    """Training loss reached against the effect, one row per setting (mean ± sd over its seeds)."""
    header = ("| setting | images | epochs | lr | train loss | greedy FID | base top-p FID | "
              "greedy seq-rep-4 | greedy patch dup. | held-out ppl | entropy (nats) |")
    lines = [header, "|---" * header.count(" | ") + "|---|"]
    first = None  # the first summary's runs: its real images and base model are the footnote's
    for pair in pairs:
        label, sep, file = pair.partition("=")
        if not sep or not label or not Path(file).is_file():
            raise SystemExit(f"error: --compare takes LABEL=SUMMARY_JSON with an existing file, got {pair!r}")
        try:
            summary = json.loads(Path(file).read_text())
            args, runs = summary["args"], [r for r in summary["runs"].values() if r["results"]]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as err:
            raise SystemExit(f"error: {file} is not a summary.json of this script ({type(err).__name__}: {err})")
        if not runs:
            raise SystemExit(f"error: {file} has no benchmarked run (was it made with --no-completions?)")
        trained = [r["prediction"].get("epochs", args["epochs"]) for r in runs]  # older summaries: the plan
        epochs = str(trained[0]) if len(set(trained)) == 1 else " / ".join(map(str, trained))
        schedule = args.get("lr_schedule", "constant")
        cells = [label, str(args["num_train"]), epochs,
                 f"{args['lr']:g}" + ("" if schedule == "constant" else f" {schedule} to 0"),
                 _final_loss(runs)]
        cells += [_mean_spread([image_value(r["results"][name], key) for r in runs]) for name, key in (
            ("hyperfit-greedy", "fid"), ("base-top-p", "fid"), ("hyperfit-greedy", "seq_rep_4"),
            ("hyperfit-greedy", "patch_duplication"))]
        cells += [_mean_spread([r["prediction"]["hyperfit"][k] for r in runs]) for k in ("perplexity", "entropy_mean")]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
        first = first or runs[0]
    real, base = first["results"]["real"], first["prediction"]["base"]
    lines.append(f"\nreal images (first summary's test set): seq-rep-4 {image_value(real, 'seq_rep_4'):.4g}, "
                 f"patch dup. {image_value(real, 'patch_duplication'):.4g}; base model: held-out ppl "
                 f"{base['perplexity']:.4g}, entropy {base['entropy_mean']:.4g}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
