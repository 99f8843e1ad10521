"""ImageGPT colour palettes: k RGB centres; a pixel's token is the index of its nearest centre.

Internally a palette is a float32 (k, 3) tensor in pixel units (0..255). HF's ImageGPTImageProcessor stores
the same centres as `clusters` scaled to [-1, 1]; we convert at the boundary.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from hyperfit_core.errors import HyperfitError


def palette_from_clusters(clusters) -> torch.Tensor:
    """HF `clusters` ([-1, 1]) -> pixel-unit palette."""
    return (torch.as_tensor(np.asarray(clusters), dtype=torch.float32) + 1.0) * 127.5


def palette_to_clusters(palette: torch.Tensor) -> np.ndarray:
    return (palette.float() / 127.5 - 1.0).numpy()


def load_palette_file(path: str | Path) -> torch.Tensor:
    """A k x 3 array from .npy, .json or whitespace text. Values all within [-1, 1] are read as HF clusters,
    anything else as 0..255 pixel values."""
    path = Path(path)
    if not path.is_file():
        raise HyperfitError(f"palette file not found: {path}")
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif path.suffix == ".json":
            array = np.asarray(json.loads(path.read_text()), dtype=np.float32)
        else:
            array = np.loadtxt(path, dtype=np.float32)
    except Exception as exc:
        raise HyperfitError(f"cannot read palette file {path}: {exc}") from None
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != 3 or len(array) == 0:
        raise HyperfitError(f"palette file {path} must hold a k x 3 array, got shape {array.shape}")
    if array.min() >= -1.0 and array.max() <= 1.0:
        return palette_from_clusters(array)
    if array.min() < 0 or array.max() > 255:
        raise HyperfitError(f"palette file {path}: values must be in [-1, 1] or [0, 255]")
    return torch.from_numpy(array)


def nearest_colour(pixels: torch.Tensor, palette: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Index of the nearest palette colour (squared RGB distance) for each of the (M, 3) pixels."""
    pixels = pixels.reshape(-1, 3).float()
    palette = palette.float()
    out = torch.empty(len(pixels), dtype=torch.long)
    for first in range(0, len(pixels), chunk):
        out[first:first + chunk] = torch.cdist(pixels[first:first + chunk], palette).argmin(dim=1)
    return out


def kmeans_palette(images: torch.Tensor, k: int, seed: int = 0, iterations: int = 25,
                   max_pixels: int = 200_000) -> torch.Tensor:
    """Fit k colour centres to the pixels of uint8 (N, H, W, 3) images: seeded k-means++ then Lloyd steps.

    Fitting uses at most `max_pixels` randomly chosen pixels: centres of 512 clusters are stable long before
    all 2M pixels of 2000 CIFAR images are seen. Duplicate or empty centres are re-seeded on far pixels.
    """
    if k < 1:
        raise HyperfitError("a palette needs at least one colour")
    generator = torch.Generator().manual_seed(seed)
    pixels = images.reshape(-1, 3).float()
    if len(pixels) == 0:
        raise HyperfitError("cannot fit a palette: no pixels")
    if len(pixels) > max_pixels:
        pixels = pixels[torch.randperm(len(pixels), generator=generator)[:max_pixels]]
    centres = pixels[torch.randint(len(pixels), (1,), generator=generator)]
    nearest_d2 = torch.cdist(pixels, centres).squeeze(1) ** 2
    for _ in range(1, k):  # k-means++: each new centre far from those chosen
        weights = nearest_d2 if nearest_d2.sum() > 0 else torch.ones_like(nearest_d2)
        new = pixels[torch.multinomial(weights, 1, generator=generator)]
        centres = torch.cat([centres, new])
        nearest_d2 = torch.minimum(nearest_d2, (torch.cdist(pixels, new).squeeze(1)) ** 2)
    for _ in range(iterations):
        assign = nearest_colour(pixels, centres)
        sums = torch.zeros_like(centres).index_add_(0, assign, pixels)
        counts = torch.bincount(assign, minlength=k).float()
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres.clamp(0, 255)
