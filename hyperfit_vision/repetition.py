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

import numpy as np
import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_core.metrics import mean_seq_rep_n, mean_type_token_ratio

# Mean absolute difference (0..255 pixel units, over the row's W x 3 values) at or below which a row "nearly
# copies" the row above. 4 levels (~1.6% of the range) is below what CIFAR-10 neighbours usually differ by
# (median ~16; 4% of adjacent rows of the 20 bundled test images fall under 4), and far below random noise (~85).
ROW_TOLERANCE = 4.0
PATCH_SIZE = 4
ZLIB_LEVEL = 9
NGRAM_ORDERS = (1, 2, 3, 4)


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
    return array[:, prefix_rows * width:].astype(np.int64)


def token_repetition(tokens, height: int, width: int, prefix_rows: int, what: str = "tokens") -> dict:
    """seq_rep_1..4 and the type-token ratio of each image's generated-region tokens (row-major), mean over images."""
    region = _generated_tokens(tokens, height, width, prefix_rows, what)
    if region.shape[1] < max(NGRAM_ORDERS):
        raise HyperfitError(f"the generated region has {region.shape[1]} tokens; seq-rep needs {max(NGRAM_ORDERS)}")
    out = {f"seq_rep_{n}": mean_seq_rep_n(region, n) for n in NGRAM_ORDERS}
    out["type_token_ratio"] = mean_type_token_ratio(region)
    return out


def row_repetition(images, prefix_rows: int, tolerance: float = ROW_TOLERANCE) -> float:
    """Fraction of generated rows whose mean |pixel - pixel above| <= tolerance (0..255 units). The row above the
    first generated row is the last prefix row, so copying the prompt's bottom row counts too. With
    prefix_rows 0 the top row has nothing above it and is not counted."""
    images = _as_images(images, "images")
    prefix_rows = _check_prefix(prefix_rows, images.shape[1])
    first = max(prefix_rows, 1)
    pixels = images.astype(np.int16)
    diff = np.abs(pixels[:, first:] - pixels[:, first - 1:-1]).mean(axis=(2, 3))  # (N, generated rows)
    return float((diff <= tolerance).mean(axis=1).mean())


def _patch_duplication_one(region: np.ndarray, k: int) -> float:
    patches = np.lib.stride_tricks.sliding_window_view(region, (k, k), axis=(0, 1))  # (R-k+1, W-k+1, 3, k, k)
    flat = np.ascontiguousarray(patches.reshape(-1, patches[0, 0].size))
    keys = flat.view(np.dtype((np.void, flat.shape[1]))).ravel()  # one bytes key per patch: fast exact compare
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return float((counts[inverse] > 1).mean())


def patch_duplication(images, prefix_rows: int, patch_size: int = PATCH_SIZE) -> float:
    """Fraction of k x k patches of the generated region that exactly equal another patch of the same image's
    generated region. Patches are taken at ALL positions (stride 1, overlaps allowed), not on a fixed grid:
    repeated motifs come at any period and offset, and a grid only sees periods that are multiples of k."""
    images = _as_images(images, "images")
    prefix_rows = _check_prefix(prefix_rows, images.shape[1])
    k = int(patch_size)
    if k < 1 or images.shape[1] - prefix_rows < k or images.shape[2] < k:
        raise HyperfitError(f"patch size {patch_size} does not fit the {images.shape[1] - prefix_rows} x "
                            f"{images.shape[2]} generated region")
    return float(np.mean([_patch_duplication_one(image[prefix_rows:], k) for image in images]))


def compressed_sizes(images, prefix_rows: int) -> np.ndarray:
    """zlib (level 9) size in bytes of each image's generated-region raw RGB bytes."""
    images = _as_images(images, "images")
    prefix_rows = _check_prefix(prefix_rows, images.shape[1])
    return np.array([len(zlib.compress(np.ascontiguousarray(im[prefix_rows:]).tobytes(), ZLIB_LEVEL))
                     for im in images], dtype=np.float64)


def compression_ratio(generated_images, real_images, prefix_rows: int) -> float:
    """Mean over images of compressed(generated_i) / compressed(real_i) on the generated region: < 1 means the
    completions are more compressible (more repetitive) than the real images they replace. Needs pairs."""
    generated = compressed_sizes(generated_images, prefix_rows)
    real = compressed_sizes(real_images, prefix_rows)
    if len(generated) != len(real):
        raise HyperfitError(f"compression ratio pairs images: got {len(generated)} generated, {len(real)} real")
    return float(np.mean(generated / real))


def _pixel_metrics(images: np.ndarray, prefix_rows: int, row_tolerance: float, patch_size: int) -> dict:
    pixels = (images.shape[1] - prefix_rows) * images.shape[2]
    return {"row_repetition": row_repetition(images, prefix_rows, row_tolerance),
            "patch_duplication": patch_duplication(images, prefix_rows, patch_size),
            "compressed_bytes_per_pixel": float(compressed_sizes(images, prefix_rows).mean() / pixels)}


def repetition_report(generated_images, real_images, generated_tokens=None, real_tokens=None, prefix_rows: int = 8,
                      row_tolerance: float = ROW_TOLERANCE, patch_size: int = PATCH_SIZE) -> dict:
    """Every repetition metric for the generated images and, beside it, for the real images (same rows).

    Returns {"metrics": {name: {"generated": x, "real": y}}, "settings": {...}, counts}. Token metrics
    (seq_rep_1..4, type_token_ratio) need both token arrays (N, H*W); pass None for both to skip them.
    compression_ratio_vs_real pairs image i with image i, so it is None when the counts differ; the real
    side of it is 1.0 by definition.
    """
    generated = _as_images(generated_images, "generated images")
    real = _as_images(real_images, "real images")
    if generated.shape[1:] != real.shape[1:]:
        raise HyperfitError(f"generated images are {generated.shape[1:3]}, real {real.shape[1:3]}: "
                            "compare images of the same size")
    height, width = generated.shape[1:3]
    prefix_rows = _check_prefix(prefix_rows, height)
    if (generated_tokens is None) != (real_tokens is None):
        raise HyperfitError("pass tokens for both generated and real images, or for neither")

    sides = {"generated": _pixel_metrics(generated, prefix_rows, row_tolerance, patch_size),
             "real": _pixel_metrics(real, prefix_rows, row_tolerance, patch_size)}
    if generated_tokens is not None:
        for side, tokens, count in (("generated", generated_tokens, len(generated)), ("real", real_tokens, len(real))):
            if len(tokens) != count:
                raise HyperfitError(f"{side}: {len(tokens)} token rows for {count} images")
            sides[side].update(token_repetition(tokens, height, width, prefix_rows, f"{side} tokens"))
    paired = len(generated) == len(real)
    sides["generated"]["compression_ratio_vs_real"] = compression_ratio(generated, real, prefix_rows) if paired \
        else None
    sides["real"]["compression_ratio_vs_real"] = 1.0 if paired else None

    metrics = {name: {"generated": sides["generated"][name], "real": sides["real"][name]}
               for name in sides["generated"]}
    return {"metrics": metrics, "prefix_rows": prefix_rows, "generated_rows": height - prefix_rows,
            "n_generated": len(generated), "n_real": len(real),
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
