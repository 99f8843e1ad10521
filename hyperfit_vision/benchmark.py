"""Score completions of the same held-out images under several conditions (model x decoding x blocker):
FID/KID against the real images, patch-repetition metrics beside the real images' own, overlap with the
hyperfitting data (hyperfit_vision.scoring, the image scoring entry). Used by `hyperfit vision benchmark`,
scripts/fid_benchmark.py and the demo. Writes results.{json,md,png}, per_item.json (each per-image metric's value
per held-out image, generated and real side) and grid.png.

Each condition's completions and Inception features are cached in the run dir, so an interrupted benchmark
resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hyperfit_core import distributed_eval
from hyperfit_core import metric_registry as registry
from hyperfit_core.atomic import write_json, write_text
from hyperfit_core.decoding import DecodingConfig
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import COMPLETIONS, PER_ITEM, RESULTS
from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences
from hyperfit_vision.data import LabelledImages
from hyperfit_vision.model import ImageModel
from hyperfit_core.blocker import CitationBlocker
from hyperfit_core.plots import save_png
from hyperfit_vision.completion import complete_run, load_completions
from hyperfit_vision.grid import grid_from_completions
from hyperfit_vision.scoring import TABLE, ImageFid, benchmark_record, image_value, score_images

INCEPTION_DIMS = 2048  # below this many images FID's covariance is rank-deficient and the value biased up


@dataclass
class Condition:
    name: str
    model: str  # key into the models dict: "base" or "hyperfit"
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    blocker: bool = False


def paper_conditions(seed: int = 0) -> list[Condition]:
    """The comparison the paper makes, plus the blocker: base greedy / top-p, hyperfitted greedy (+ blocker)."""
    return [Condition("base-greedy", "base"), Condition("base-top-p", "base", DecodingConfig.paper_top_p(seed)),
            Condition("hyperfit-greedy", "hyperfit"), Condition("hyperfit-blocked", "hyperfit", blocker=True)]


def run_benchmark(models: dict[str, ImageModel], images: LabelledImages, conditions: list[Condition], run: RunDir,
                  train_tokens: TokenSequences | None = None, prefix_fraction: float = 0.25,
                  blocker_n: int | None = None, fid: bool = True, fid_weights: str | None = None,
                  batch_size: int | None = None, device: str = "auto", scorer: ImageFid | None = None) -> dict:
    """Complete `images` under each condition (cached), score everything, write results.{json,md}, plots, grid.
    `scorer`: FID / KID's network, loaded already (a command loads it before it makes its run dir)."""
    for condition in conditions:
        if condition.model not in models:
            raise HyperfitError(f"condition {condition.name} needs a {condition.model!r} model")
        if condition.blocker and train_tokens is None:
            raise HyperfitError(f"condition {condition.name} uses the blocker but no hyperfitting tokens were given")
    files = {}
    for condition in conditions:
        path = run / f"{condition.name}.{COMPLETIONS}"
        if not path.is_file():
            model = models[condition.model]
            blocker = CitationBlocker(train_tokens.ids, n=blocker_n or 2 * model.side) if condition.blocker else None
            complete_run(model, images, prefix_fraction, condition.decoding, run, condition.name, blocker=blocker,
                         batch_size=batch_size, device=device)
        files[condition.name] = path
    distributed_eval.gather(None)  # under torchrun: wait until the main process has written every condition
    if fid and scorer is None:
        scorer = ImageFid(fid_weights, device=device)
    return score_conditions(files, run, train_tokens, scorer if fid else None)


def score_conditions(files: dict[str, Path], run: RunDir, train_tokens: TokenSequences | None = None,
                     scorer: ImageFid | None = None) -> dict:
    """Score completions files of the same held-out images ({condition: NAME.completions.safetensors in `run`}):
    repetition beside the real images' own, copying of `train_tokens` when given, FID / KID with `scorer`; writes
    results.{json,md,png}, per_item.json and grid.png. `vision benchmark` and `vision evaluate` both end here."""
    train_pixels = train_tokens.ids[:, 1:] if train_tokens is not None else None
    results, per_item = {}, {}
    for name, path in files.items():
        data = load_completions(path)
        sides = score_images(data, train_pixels)
        results[name] = benchmark_record(sides, len(data["tokens"]))
        per_item[name] = {side: scores.per_item for side, scores in sides.items()}
    images = next(iter(results.values()))["count"]
    real_reference = next(iter(results.values()))["repetition"]
    results["real"] = {"repetition": {k: {"generated": v["real"], "real": v["real"]} for k, v in real_reference.items()}}
    if scorer is not None:
        for name, path in files.items():
            results[name].update(scorer(path))
    for name, blob in results.items():
        blob["images"] = images
        run.log({"event": "scored", "condition": name, **_flat(blob)})
    if not run.writer:  # every process scored the same (FID features computed where the images are); one writes
        return results
    write_json(run / RESULTS, results)
    write_json(run / PER_ITEM, per_item)
    write_text(run / "results.md", results_table(results))
    plot_results(results, run / "results.png")
    grid_from_completions(files, run / "grid.png")
    return results


def _flat(blob: dict) -> dict:
    out = {k: v for k, v in blob.items() if k != "repetition"}
    out.update({k: v["generated"] for k, v in blob.get("repetition", {}).items()})
    return out


def scoring_note(results: dict) -> str:
    """How many images each number rests on, and the FID caveat when that is fewer than Inception's dimensions."""
    count = next(iter(results.values())).get("images")
    note = f"{count} held-out images scored per condition." if count is not None else ""
    if count is not None and count < INCEPTION_DIMS and any(b.get("fid") is not None for b in results.values()):
        note += (f" FID rests on {count} < {INCEPTION_DIMS} images (Inception's feature dimension): its covariance "
                 "is rank-deficient and the value biased upward; compare conditions by KID.")
    if count is not None and any(b.get("kid_subset_size") == count for b in results.values()):
        note += (f" KID's ± is 0: its subsets hold min(1000, {count}) images, so every subset is the whole set "
                 "(score more than 1000 images for a spread).")
    return note


def results_table(results: dict) -> str:
    """Markdown: one row per condition; the `real` row is the real images' own score on the same rows."""
    present = [key for key in TABLE if any(image_value(blob, key) is not None for blob in results.values())]
    lines = ["| condition | " + " | ".join(registry.label_of(key) for key in present) + " |",
             "|---" * (len(present) + 1) + "|"]
    for name, blob in results.items():
        cells = []
        for key in present:
            value = image_value(blob, key)
            cell = "-" if value is None else f"{value:.4g}"
            if key == "kid_mean" and blob.get("kid_std") is not None:
                cell += f" ± {blob['kid_std']:.2g}"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    note = scoring_note(results)
    return "\n".join(lines) + "\n" + (f"\n{note}\n" if note else "")


def plot_results(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # KID tracks FID and the overlap has no real-image side: one panel per other column
    keys = [k for k in TABLE if k not in ("kid_mean", "overlap_mean_span")
            and any(image_value(b, k) is not None for b in results.values())]
    fig, axes = plt.subplots(1, len(keys), figsize=(2.6 * len(keys), 3.2))
    names = list(results)
    for ax, key in zip(axes, keys):
        values = [image_value(results[n], key) for n in names]
        ax.bar(range(len(names)), [v if v is not None else 0 for v in values],
               color=["tab:gray" if n == "real" else "tab:blue" for n in names])
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(registry.label_of(key), fontsize=9)
    count = next(iter(results.values())).get("images")
    if count is not None:
        caveat = " (FID biased: fewer images than Inception's 2048 dims)" if "fid" in keys and count < INCEPTION_DIMS else ""
        fig.suptitle(f"{count} images per condition{caveat}", fontsize=9)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
