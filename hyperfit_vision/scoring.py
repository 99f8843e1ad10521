"""The image scoring entry: every registered image metric of a completions file (hyperfit_core.metric_registry).

`score_images` scores one condition's completions beside the real images they replace (repetition, TTR,
seq-rep, compressibility; copying of the hyperfitting data when given); `ImageFid` adds FID / KID with Inception
features cached beside each completions file. `vision benchmark`, scripts/data_influence.py,
scripts/measure_loss_trajectory.py and scripts/fid_from_cache.py all score through these two.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from hyperfit_core import distributed_eval
from hyperfit_core import metric_registry as registry
from hyperfit_core.atomic import atomic_path
from hyperfit_core.rundir import is_main_process
from hyperfit_core.scoring import Scores
from hyperfit_core.formats import COMPLETIONS, FEATURES, condition_file, condition_name
from hyperfit_vision.completion import load_completions
from hyperfit_vision.repetition import ImageSettings, score_sides
from hyperfit_vision.tokens import tokens_to_images

REAL_FEATURES = f"real.{FEATURES}"  # the real images' Inception features, beside their completions files

# the columns of benchmark tables (results.md, scripts/measure_hyperfitting.py), in order
TABLE = ("fid", "kid_mean", registry.key("seq_rep_{n}", n=4), "type_token_ratio", "row_repetition",
         "patch_duplication", "compression_ratio_vs_real", "overlap_mean_span")


def score_images(data: dict, train=None, settings: ImageSettings = ImageSettings(),
                 real_copying: bool = False) -> dict[str, Scores]:
    """{"generated": Scores, "real": Scores} of a completions dict (load_completions: tokens, real_tokens, palette,
    prefix_rows): the real images pass through the same palette, so quantised flat areas do not count as the
    model's repetition. `train`: the hyperfitting data's token ids without SOS, to score copying (of the real
    images too with real_copying: flat backgrounds match long runs of any training image)."""
    side = int(data["real_tokens"].shape[1] ** 0.5)
    generated = tokens_to_images(data["tokens"], data["palette"], side)
    real = tokens_to_images(data["real_tokens"], data["palette"], side)
    return score_sides(generated, real, data["tokens"], data["real_tokens"], int(data["prefix_rows"]), settings,
                       train=train, real_train=train if real_copying else None)


def benchmark_record(sides: dict[str, Scores], count: int, settings: ImageSettings = ImageSettings()) -> dict:
    """A condition's entry in benchmark results: metrics scored on both sides under "repetition" as
    {generated, real}, the rest (copying) flat, and `count` (completions scored)."""
    generated, real = sides["generated"].values, sides["real"].values
    record = {"repetition": {k: {"generated": v, "real": real[k]} for k, v in generated.items() if k in real},
              **{k: v for k, v in generated.items() if k not in real}, "count": count}
    if registry.key("overlap_mean_span") in generated:
        record["overlap_threshold"] = settings.overlap_threshold
    return record


def image_value(record: dict, results_key: str, side: str = "generated"):
    """The value of a registered metric in a benchmark record (old key spellings too), or None."""
    metric, params = registry.lookup(results_key)
    pair = registry.read(record.get("repetition", {}), metric.name, **params)
    if pair is not None:
        return pair.get(side)
    return registry.read(record, metric.name, **params) if side == "generated" else None


def cached_features(extractor, images: torch.Tensor, cache: Path) -> torch.Tensor:
    """Inception features of `images`, reused from `cache` when it holds features of exactly these pixels from
    the same weights (thousands of images take tens of minutes on a CPU; an interrupted benchmark keeps them)."""
    key = hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest() + f"|{extractor.weights_path}"
    if cache.is_file():
        with safe_open(str(cache), framework="pt") as f:
            if (f.metadata() or {}).get("key") == key:
                return f.get_tensor("features")
    # under torchrun each process extracts its part of the images; the parts are gathered in order
    features = distributed_eval.map_items(len(images), lambda part: extractor(images[part]))
    if is_main_process():
        with atomic_path(cache) as tmp:
            save_file({"features": features.contiguous()}, str(tmp), metadata={"key": key})
    return features


class ImageFid:
    """FID / KID of completions files against their real images (every condition completes the same images, so
    the real features are extracted once), features cached as <condition>.inception.safetensors and
    real.inception.safetensors beside the files."""

    def __init__(self, weights: str | None = None, extractor=None, device: str | None = None):
        from hyperfit_vision.fid import InceptionFeatures

        self.extractor = extractor or InceptionFeatures(weights, device=device)
        self.real_features = None

    def __call__(self, path: Path, keep: torch.Tensor | None = None) -> dict:
        """fid, kid_mean, kid_std and their counts for one completions file; `keep` (a boolean mask over the
        images) scores a subset of them."""
        from hyperfit_vision.fid import check_images, fid_kid_from_features

        path = Path(path)
        data = load_completions(path)
        side = int(data["real_tokens"].shape[1] ** 0.5)
        if self.real_features is None:
            real = check_images(tokens_to_images(data["real_tokens"], data["palette"], side), "real images", 2)
            self.real_features = cached_features(self.extractor, real, path.with_name(REAL_FEATURES))
        fake = check_images(tokens_to_images(data["tokens"], data["palette"], side), "generated images", 2)
        cache = condition_file(path.parent, condition_name(path, COMPLETIONS), FEATURES)  # as evaluate's copy_into
        fake_features = cached_features(self.extractor, fake, cache)
        keep = slice(None) if keep is None else keep
        return fid_kid_from_features(self.real_features[keep], fake_features[keep])
