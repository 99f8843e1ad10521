"""Score completions of the same held-out images under several conditions (model x decoding x blocker):
FID/KID against the real images, patch-repetition metrics beside the real images' own, overlap with the
hyperfitting data. Used by `hyperfit vision benchmark`, scripts/fid_benchmark.py and the demo.

Each condition's completions and Inception features are cached in the run dir, so an interrupted benchmark
resumes where it stopped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from hyperfit_core.atomic import atomic_path, write_json, write_text
from hyperfit_core.decoding import DecodingConfig
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import COMPLETIONS, FEATURES, RESULTS
from hyperfit_core.overlap import overlap_report
from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences
from hyperfit_vision.data import LabelledImages
from hyperfit_vision.model import ImageModel
from hyperfit_core.blocker import CitationBlocker
from hyperfit_vision.completion import complete_run, load_completions
from hyperfit_vision.grid import grid_from_completions
from hyperfit_vision.repetition import repetition_report
from hyperfit_vision.tokens import tokens_to_images

INCEPTION_DIMS = 2048  # below this many images FID's covariance is rank-deficient and the value biased up
# Columns of the Markdown table: (result key, header, metric lives under "repetition")
TABLE = [("fid", "FID", False), ("kid_mean", "KID", False), ("seq_rep_4", "seq-rep-4", True),
         ("type_token_ratio", "TTR", True), ("row_repetition", "row rep.", True),
         ("patch_duplication", "patch dup.", True), ("compression_ratio_vs_real", "zlib vs real", True),
         ("mean_span", "train overlap", False)]


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


def _score(data: dict, train_pixels: torch.Tensor | None) -> dict:
    side = int(data["real_tokens"].shape[1] ** 0.5)
    prefix_rows = int(data["prefix_rows"])
    generated = tokens_to_images(data["tokens"], data["palette"], side)
    # real images through the same palette: quantised flat areas must not count as the model's repetition
    real = tokens_to_images(data["real_tokens"], data["palette"], side)
    report = repetition_report(generated, real, data["tokens"], data["real_tokens"], prefix_rows)
    scores = {"repetition": report["metrics"]}
    if train_pixels is not None:
        scores.update(overlap_report(data["tokens"][:, prefix_rows * side:], train_pixels))
    return scores


def run_benchmark(models: dict[str, ImageModel], images: LabelledImages, conditions: list[Condition], run: RunDir,
                  train_tokens: TokenSequences | None = None, prefix_fraction: float = 0.25,
                  blocker_n: int | None = None, fid: bool = True, fid_weights: str | None = None,
                  batch_size: int | None = None, device: str = "auto") -> dict:
    """Complete `images` under each condition (cached), score everything, write results.{json,md}, plots, grid."""
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
    train_pixels = train_tokens.ids[:, 1:] if train_tokens is not None else None
    results = {name: _score(load_completions(path), train_pixels) for name, path in files.items()}
    real_reference = next(iter(results.values()))["repetition"]
    results["real"] = {"repetition": {k: {"generated": v["real"], "real": v["real"]} for k, v in real_reference.items()}}
    if fid:
        _add_fid(results, files, fid_weights)
    for name, blob in results.items():
        blob["images"] = len(images)
        run.log({"event": "scored", "condition": name, **_flat(blob)})
    write_json(run / RESULTS, results)
    write_text(run / "results.md", results_table(results))
    plot_results(results, run / "results.png")
    grid_from_completions(files, run / "grid.png")
    return results


def cached_features(extractor, images: torch.Tensor, cache: Path) -> torch.Tensor:
    """Inception features of `images`, reused from `cache` when it holds features of exactly these pixels from
    the same weights (thousands of images take tens of minutes on a CPU; an interrupted benchmark keeps them)."""
    key = hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest() + f"|{extractor.weights_path}"
    if cache.is_file():
        with safe_open(str(cache), framework="pt") as f:
            if (f.metadata() or {}).get("key") == key:
                return f.get_tensor("features")
    features = extractor(images)
    with atomic_path(cache) as tmp:
        save_file({"features": features.contiguous()}, str(tmp), metadata={"key": key})
    return features


def _add_fid(results: dict, files: dict, weights: str | None) -> None:
    """FID/KID of each condition against the real images through the same palette (features extracted once)."""
    from hyperfit_vision.fid import InceptionFeatures, check_images, fid_kid_from_features

    extractor = InceptionFeatures(weights)
    real_features = None
    for name, path in files.items():
        data = load_completions(path)
        side = int(data["real_tokens"].shape[1] ** 0.5)
        if real_features is None:  # every condition completes the same images
            real = check_images(tokens_to_images(data["real_tokens"], data["palette"], side), "real images", 2)
            real_features = cached_features(extractor, real, path.with_name(f"real.{FEATURES}"))
        fake = check_images(tokens_to_images(data["tokens"], data["palette"], side), "generated images", 2)
        fake_features = cached_features(extractor, fake, path.with_name(f"{name}.{FEATURES}"))
        results[name].update(fid_kid_from_features(real_features, fake_features))


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
                 "is rank-deficient and the value biased upward; compare conditions by KID ± its std.")
    return note


def results_table(results: dict) -> str:
    """Markdown: one row per condition; the `real` row is the real images' own score on the same rows."""
    present = [(key, header, rep) for key, header, rep in TABLE
               if any((blob.get("repetition", {}) if rep else blob).get(key) is not None for blob in results.values())]
    lines = ["| condition | " + " | ".join(h for _, h, _ in present) + " |", "|---" * (len(present) + 1) + "|"]
    for name, blob in results.items():
        cells = []
        for key, _, rep in present:
            value = blob.get("repetition", {}).get(key, {}).get("generated") if rep else blob.get(key)
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

    keys = [k for k, _, rep in TABLE if rep and any(k in b.get("repetition", {}) for b in results.values())]
    if any("fid" in blob for blob in results.values()):
        keys = ["fid"] + keys
    fig, axes = plt.subplots(1, len(keys), figsize=(2.6 * len(keys), 3.2))
    names = list(results)
    for ax, key in zip(axes, keys):
        values = [(results[n].get(key) if key == "fid" else results[n].get("repetition", {}).get(key, {}).get("generated"))
                  for n in names]
        ax.bar(range(len(names)), [v if v is not None else 0 for v in values],
               color=["tab:gray" if n == "real" else "tab:blue" for n in names])
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(key, fontsize=9)
    count = next(iter(results.values())).get("images")
    if count is not None:
        caveat = " (FID biased: fewer images than Inception's 2048 dims)" if "fid" in keys and count < INCEPTION_DIMS else ""
        fig.suptitle(f"{count} images per condition{caveat}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
