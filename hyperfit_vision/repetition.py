"""Repetition in completed images, measured on the generated region only (rows >= prefix_rows).

Greedy decoding of an un-hyperfitted ImageGPT tends to repeat: the same palette colours, rows copied from the
row above, tiled patches. Each statistic here is computed for the generated images AND for real images on the
same rows, so every number comes with "real images score X" beside it; a metric means little without that.
All per-image statistics are averaged over images (each image weighs the same).

For a fair comparison pass real images through the same palette as the model (tokens_to_images of their
tokens): quantised pixels have exactly equal flat areas that raw photos lack, which would inflate the
generated side of the pixel metrics.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

from hyperfit_core import metric_registry as registry
from hyperfit_core.errors import HyperfitError
from hyperfit_core.scoring import Sample, Scored, Scores, score

# Mean absolute difference (0..255 pixel units, over the row's W x 3 values) at or below which a row "nearly
# copies" the row above. 4 levels (~1.6% of the range) is below what CIFAR-10 neighbours usually differ by
# (median ~16; 4% of adjacent rows of the 20 bundled test images fall under 4), and far below random noise (~85).
ROW_TOLERANCE = 4.0
PATCH_SIZE = 4
ZLIB_LEVEL = 9
NGRAM_ORDERS = (1, 2, 3, 4)


@dataclass(frozen=True)
class ImageSettings:
    """Parameters of the image metrics (hyperfit_core/metric_list.py names which metric reads which)."""
    row_tolerance: float = ROW_TOLERANCE
    patch_size: int = PATCH_SIZE
    rep_n: tuple = NGRAM_ORDERS  # seq_rep_1..4
    ttr_last: int | None = None  # TTR over the whole generated region
    overlap_threshold: int = 10


def _as_images(images, what: str) -> np.ndarray:
    array = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise HyperfitError(f"{what} must be (N, H, W, 3), got shape {array.shape}")
    if array.dtype != np.uint8:
        raise HyperfitError(f"{what} must be uint8 pixels 0..255, got {array.dtype}")
    if len(array) == 0:
        raise HyperfitError(f"{what}: no images")
    return array


def _check_prefix(prefix_rows: int, height: int) -> int:
    if not isinstance(prefix_rows, (int, np.integer)) or not 0 <= prefix_rows < height:
        raise HyperfitError(f"prefix_rows must be an integer in [0, {height - 1}], got {prefix_rows!r}")
    return int(prefix_rows)


def _generated_tokens(tokens, height: int, width: int, prefix_rows: int, what: str) -> np.ndarray:
    array = tokens.numpy() if isinstance(tokens, torch.Tensor) else np.asarray(tokens)
    if array.ndim != 2 or array.shape[1] != height * width:
        raise HyperfitError(f"{what} must be (N, {height * width}) palette ids, row-major (no SOS column), "
                            f"got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise HyperfitError(f"{what} must be integer palette ids, got {array.dtype}")
    region = array[:, prefix_rows * width:].astype(np.int64)
    if region.shape[1] < max(NGRAM_ORDERS):
        raise HyperfitError(f"the generated region has {region.shape[1]} tokens; seq-rep needs {max(NGRAM_ORDERS)}")
    return region


def token_repetition(tokens, height: int, width: int, prefix_rows: int, what: str = "tokens") -> dict:
    """seq_rep_1..4 and the type-token ratio of each image's generated-region tokens (row-major), mean over images."""
    region = _generated_tokens(tokens, height, width, prefix_rows, what)
    return score(Sample(tokens=region), registry.IMAGE, ImageSettings()).values


def row_repetitions(images, prefix_rows: int, tolerance: float = ROW_TOLERANCE) -> np.ndarray:
    """Per image: the fraction of generated rows whose mean |pixel - pixel above| <= tolerance (0..255 units).
    The row above the first generated row is the last prefix row, so copying the prompt's bottom row counts too.
    With prefix_rows 0 the top row has nothing above it and is not counted."""
    images = _as_images(images, "images")
    prefix_rows = _check_prefix(prefix_rows, images.shape[1])
    first = max(prefix_rows, 1)
    pixels = images.astype(np.int16)
    diff = np.abs(pixels[:, first:] - pixels[:, first - 1:-1]).mean(axis=(2, 3))  # (N, generated rows)
    return (diff <= tolerance).mean(axis=1)


def row_repetition(images, prefix_rows: int, tolerance: float = ROW_TOLERANCE) -> float:
    """row_repetitions, mean over images."""
    return float(row_repetitions(images, prefix_rows, tolerance).mean())


def _patch_duplication_one(region: np.ndarray, k: int) -> float:
    patches = np.lib.stride_tricks.sliding_window_view(region, (k, k), axis=(0, 1))  # (R-k+1, W-k+1, 3, k, k)
    flat = np.ascontiguousarray(patches.reshape(-1, patches[0, 0].size))
    keys = flat.view(np.dtype((np.void, flat.shape[1]))).ravel()  # one bytes key per patch: fast exact compare
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return float((counts[inverse] > 1).mean())


def patch_duplications(images, prefix_rows: int, patch_size: int = PATCH_SIZE) -> list[float]:
    """Per image: the fraction of k x k patches of the generated region that exactly equal another patch of the
    same image's generated region. Patches are taken at ALL positions (stride 1, overlaps allowed), not on a
    fixed grid: repeated motifs come at any period and offset, and a grid only sees periods that are multiples
    of k."""
    images = _as_images(images, "images")
    prefix_rows = _check_prefix(prefix_rows, images.shape[1])
    k = int(patch_size)
    if k < 1 or images.shape[1] - prefix_rows < k or images.shape[2] < k:
        raise HyperfitError(f"patch size {patch_size} does not fit the {images.shape[1] - prefix_rows} x "
                            f"{images.shape[2]} generated region")
    return [_patch_duplication_one(image[prefix_rows:], k) for image in images]


def patch_duplication(images, prefix_rows: int, patch_size: int = PATCH_SIZE) -> float:
    """patch_duplications, mean over images."""
    return float(np.mean(patch_duplications(images, prefix_rows, patch_size)))


def compressed_sizes(images, prefix_rows: int) -> np.ndarray:
    """zlib (level 9) size in bytes of each image's generated-region raw RGB bytes."""
    images = _as_images(images, "images")
    prefix_rows = _check_prefix(prefix_rows, images.shape[1])
    return np.array([len(zlib.compress(np.ascontiguousarray(im[prefix_rows:]).tobytes(), ZLIB_LEVEL))
                     for im in images], dtype=np.float64)


def compression_ratios(generated_images, real_images, prefix_rows: int) -> np.ndarray:
    """Per image: compressed(generated_i) / compressed(real_i) on the generated region: < 1 means the completion
    is more compressible (more repetitive) than the real image it replaces. Needs pairs."""
    generated = compressed_sizes(generated_images, prefix_rows)
    real = compressed_sizes(real_images, prefix_rows)
    if len(generated) != len(real):
        raise HyperfitError(f"compression ratio pairs images: got {len(generated)} generated, {len(real)} real")
    return generated / real


def compression_ratio(generated_images, real_images, prefix_rows: int) -> float:
    """compression_ratios, mean over images."""
    return float(np.mean(compression_ratios(generated_images, real_images, prefix_rows)))


# --- compute functions of the image metrics (registered in hyperfit_core/metric_list.py) -------------------

def _per_image(values) -> Scored:
    return Scored(float(np.mean(values)), [float(v) for v in values])


def row_repetition_hook(sample: Sample, tolerance: float) -> Scored:
    return _per_image(row_repetitions(sample.images, sample.prefix_rows, tolerance))


def patch_duplication_hook(sample: Sample, patch_size: int) -> Scored:
    return _per_image(patch_duplications(sample.images, sample.prefix_rows, patch_size))


def compressed_bytes_hook(sample: Sample) -> Scored:
    sizes = compressed_sizes(sample.images, sample.prefix_rows)
    pixels = (sample.images.shape[1] - sample.prefix_rows) * sample.images.shape[2]
    return Scored(float(sizes.mean() / pixels), (sizes / pixels).tolist())


def compression_ratio_hook(sample: Sample) -> Scored:
    return _per_image(compression_ratios(sample.images, sample.reference.images, sample.prefix_rows))


def score_sides(generated_images, real_images, generated_tokens=None, real_tokens=None, prefix_rows: int = 8,
                settings: ImageSettings = ImageSettings(), train=None, real_train=None) -> dict[str, Scores]:
    """{"generated": Scores, "real": Scores}: every registered image metric of the generated images and, on the
    same rows, of the real ones. Token metrics need both token arrays (N, H*W); copying metrics need `train`
    (`real_train` for the real side); compression_ratio_vs_real pairs image i with image i (left out when the
    counts differ; the real images against themselves give 1)."""
    generated = _as_images(generated_images, "generated images")
    real = _as_images(real_images, "real images")
    if generated.shape[1:] != real.shape[1:]:
        raise HyperfitError(f"generated images are {generated.shape[1:3]}, real {real.shape[1:3]}: "
                            "compare images of the same size")
    height, width = generated.shape[1:3]
    prefix_rows = _check_prefix(prefix_rows, height)
    if (generated_tokens is None) != (real_tokens is None):
        raise HyperfitError("pass tokens for both generated and real images, or for neither")
    regions = {"generated": None, "real": None}
    if generated_tokens is not None:
        for side, tokens, count in (("generated", generated_tokens, len(generated)), ("real", real_tokens, len(real))):
            if len(tokens) != count:
                raise HyperfitError(f"{side}: {len(tokens)} token rows for {count} images")
            regions[side] = _generated_tokens(tokens, height, width, prefix_rows, f"{side} tokens")
    real_sample = Sample(tokens=regions["real"], images=real, prefix_rows=prefix_rows, train=real_train)
    paired = len(generated) == len(real)
    real_sample.reference = real_sample if paired else None
    generated_sample = Sample(tokens=regions["generated"], images=generated, prefix_rows=prefix_rows, train=train,
                              reference=real_sample if paired else None)
    return {"generated": score(generated_sample, registry.IMAGE, settings),
            "real": score(real_sample, registry.IMAGE, settings)}


def repetition_report(generated_images, real_images, generated_tokens=None, real_tokens=None, prefix_rows: int = 8,
                      row_tolerance: float = ROW_TOLERANCE, patch_size: int = PATCH_SIZE) -> dict:
    """Every repetition metric for the generated images and, beside it, for the real images (same rows).

    Returns {"metrics": {name: {"generated": x, "real": y}}, "settings": {...}, counts}. Token metrics
    (seq_rep_1..4, type_token_ratio) need both token arrays (N, H*W); pass None for both to skip them.
    compression_ratio_vs_real pairs image i with image i, so it is None when the counts differ; the real
    side of it is 1.0 by definition.
    """
    settings = ImageSettings(row_tolerance=row_tolerance, patch_size=patch_size)
    sides = score_sides(generated_images, real_images, generated_tokens, real_tokens, prefix_rows, settings)
    generated, real = sides["generated"].values, sides["real"].values
    metrics = {name: {"generated": generated[name], "real": real.get(name)} for name in generated}
    metrics.setdefault(registry.key("compression_ratio_vs_real"), {"generated": None, "real": None})
    height = _as_images(generated_images, "generated images").shape[1]
    return {"metrics": metrics, "prefix_rows": int(prefix_rows), "generated_rows": height - int(prefix_rows),
            "n_generated": len(generated_images), "n_real": len(real_images),
            "settings": {"row_tolerance": row_tolerance, "patch_size": patch_size, "patch_stride": 1,
                         "zlib_level": ZLIB_LEVEL, "ngram_orders": list(NGRAM_ORDERS)}}


def format_report(report: dict) -> str:
    """One line per metric: `name: generated X (real images Y)`."""
    header = (f"repetition on rows {report['prefix_rows']}.. ({report['n_generated']} generated, "
              f"{report['n_real']} real images)")
    lines = [header]
    for name, pair in report["metrics"].items():
        value = "n/a" if pair["generated"] is None else f"{pair['generated']:.4f}"
        ref = "n/a" if pair["real"] is None else f"{pair['real']:.4f}"
        lines.append(f"  {name}: generated {value} (real images {ref})")
    return "\n".join(lines)
