"""Plot a vision mechanism summary (scripts/vision_mechanism_stats.py's JSON): each condition's FID against its
seq-rep-4, one point per seed that scored it, the conditions' means joined to their seeds, the real images' own
seq-rep-4 as a line. Repetition alone ranks a broken model (noise, torn shapes) as varied; FID beside it shows
which low-repetition rows are also like the real images (docs/mechanism.md).

    python scripts/plot_vision_mechanism.py docs/measurements/mechanism/vision_stats_c.json \\
        --out docs/measurements/mechanism/vision_c_fid_vs_repetition.png
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from hyperfit_core.errors import HyperfitError
from hyperfit_core.plots import png_target, save_png

METRIC = "seq_rep_4"


def points(summary: dict) -> dict[str, list[tuple[str, float, float]]]:
    """{condition: [(seed, seq-rep-4, FID)]} over the seeds that scored the condition's FID, in first-seen order."""
    out: dict[str, list[tuple[str, float, float]]] = {}
    for seed, entry in summary["per_seed"].items():
        for name, scores in entry["conditions"].items():
            if "fid" in scores and METRIC in scores:
                out.setdefault(name, []).append((seed, scores[METRIC], scores["fid"]))
    return out


def real_repetition(summary: dict) -> float | None:
    values = [entry["real"][METRIC] for entry in summary["per_seed"].values() if METRIC in entry.get("real", {})]
    return statistics.mean(values) if values else None


def plot(summary: dict, out: Path, title: str | None = None) -> Path:
    found = points(summary)
    if not found:
        raise HyperfitError("the summary holds no condition with both FID and seq-rep-4 (score FID: FID=1, "
                            "FID_CONDITIONS of scripts/measure_vision_mechanism.sh)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    colours = plt.get_cmap("tab20").colors
    for i, (name, rows) in enumerate(found.items()):
        x, y = statistics.mean(r[1] for r in rows), statistics.mean(r[2] for r in rows)
        colour = colours[i % len(colours)]
        for _, rx, ry in rows:
            ax.plot([x, rx], [y, ry], color=colour, lw=0.6, alpha=0.5)
        ax.scatter([r[1] for r in rows], [r[2] for r in rows], s=14, color=colour, alpha=0.6)
        ax.scatter([x], [y], s=60, color=colour, edgecolor="black", lw=0.6, zorder=3,
                   label=f"{name} ({len(rows)} seed{'s' if len(rows) > 1 else ''})")
        ax.annotate(name, (x, y), xytext=(5, 4), textcoords="offset points", fontsize=7)
    real = real_repetition(summary)
    if real is not None:
        ax.axvline(real, color="grey", ls="--", lw=0.9, label=f"real images' seq-rep-4 ({real:.3f})")
    ax.set_xlabel("seq-rep-4 of the completions (lower: less repetitive)")
    ax.set_ylabel("FID against the real test images (lower: closer)")
    ax.set_title(title or f"{len(summary['per_seed'])} seeds: FID against repetition, per condition")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return save_png(fig, out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("summary", type=Path, help="vision_mechanism_stats.py's --out JSON")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--title", default=None)
    args = p.parse_args()
    try:
        summary = json.loads(args.summary.read_text())
        if not isinstance(summary, dict) or not isinstance(summary.get("per_seed"), dict):
            raise HyperfitError(f"{args.summary} is not a vision_mechanism_stats.py summary (no per_seed)")
        png_target(args.out)
        print(plot(summary, args.out, args.title))
    except (OSError, ValueError, HyperfitError) as e:  # ValueError: not JSON, not UTF-8 text
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
