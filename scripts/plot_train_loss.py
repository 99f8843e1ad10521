"""Plot the per-epoch mean training loss of hyperfitting runs (their metrics.jsonl) and save the curves as JSON.

    python scripts/plot_train_loss.py runs/c-s0/seed0-lr0.002 runs/c-s1/seed1-lr0.002 \\
        --label "seed 0" "seed 1" --target 0.25 --out docs/train_loss_2000.png --json docs/measurements/x.json

Each epoch's value is the mean of that epoch's step losses (the weights move during the epoch, so it lags the
exact end-of-epoch loss a little); `seconds` is that epoch's wall-clock time (one thread per process).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from hyperfit_core.atomic import write_json
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import METRICS, read_jsonl
from hyperfit_core.options import POSITIVE
from hyperfit_core.plots import png_target, save_png


def epochs_of(run: Path) -> list[dict]:
    """Epoch rows of a run; `A+B` is run B continuing run A (B started from A's model): B's epochs and steps
    are numbered on from A's last, and each row says which stage it came from."""
    out: list[dict] = []
    for stage, part in enumerate(str(run).split("+")):
        rows = read_jsonl(Path(part) / METRICS)
        epoch0, step0 = (out[-1]["epoch"], out[-1]["step"]) if out else (0, 0)
        out += [{"epoch": epoch0 + r["epoch"], "step": step0 + r["step"], "mean_loss": r["mean_loss"],
                 "seconds": r["seconds"], "stage": stage + 1} for r in rows if r.get("event") == "epoch"]
    return out


def checked(args) -> tuple[list[str], dict[str, list[dict]], list[dict] | None]:
    """Labels, curves and trajectory rows, or one HyperfitError before anything is written."""
    png_target(args.out)
    if args.json is not None and args.json.resolve() == args.out.resolve():
        raise HyperfitError(f"--json and --out both name {args.out}")
    labels = args.label or [str(r) for r in args.runs]
    if len(labels) != len(args.runs) or len(set(labels)) != len(labels):
        raise HyperfitError(f"--label takes one distinct label per run: {len(args.runs)} runs, labels {labels}")
    curves = {label: epochs_of(run) for label, run in zip(labels, args.runs)}
    for label, rows in curves.items():
        if not rows:
            raise HyperfitError(f"{label}: its {METRICS} holds no finished epoch")
    trajectory = None if args.trajectory is None else json.loads(args.trajectory.read_text())["rows"]
    return labels, curves, trajectory


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path,
                   help=f"Run folders holding {METRICS}; A+B draws run B (started from A's model) after A.")
    p.add_argument("--label", nargs="+", default=None)
    p.add_argument("--target", type=POSITIVE, default=None, help="Draw the target training loss.")
    p.add_argument("--reference", type=float, default=0.9214, help="Base model's held-out loss (dotted line).")
    p.add_argument("--trajectory", type=Path, default=None,
                   help="Also draw a scripts/measure_loss_trajectory.py JSON (its exact eval-mode training loss).")
    p.add_argument("--trajectory-label", default="trajectory")
    p.add_argument("--title", default="hyperfitting loss")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    try:
        labels, curves, trajectory = checked(args)
    except (OSError, ValueError, KeyError, HyperfitError) as e:  # ValueError: not JSON; KeyError: no "rows"
        sys.exit(f"error: {e}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    for label, rows in curves.items():
        ax.plot([r["epoch"] for r in rows], [r["mean_loss"] for r in rows], "-", marker=".", label=label)
    if trajectory is not None:
        ax.plot([r["epoch"] for r in trajectory], [r["train_loss"] for r in trajectory], "s--", color="grey",
                label=args.trajectory_label)
    if args.target is not None:
        ax.axhline(args.target, color="red", linestyle="--", linewidth=1, label=f"target {args.target:g}")
    ax.axhline(args.reference, color="grey", linestyle=":", linewidth=1, label="base held-out loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (nats/pixel)")
    ax.set_title(args.title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: inside it hides curves
    fig.tight_layout()
    save_png(fig, args.out, dpi=110)
    if args.json:
        write_json(args.json, {"command": shlex.join(sys.argv),
                               "runs": {label: str(run) for label, run in zip(labels, args.runs)},
                               "curves": curves})
    for label, rows in curves.items():
        print(f"{label}: {len(rows)} epochs, final {rows[-1]['mean_loss']:.4f}, "
              f"{sum(r['seconds'] for r in rows) / 60:.1f} min")


if __name__ == "__main__":
    main()
