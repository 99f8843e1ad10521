"""Completion grids a person can read: one row per image, columns masked prefix | original | completions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from hyperfit_core.atomic import atomic_path
from hyperfit_core.errors import HyperfitError
from hyperfit_core.plots import png_target
from hyperfit_vision.completion import load_completions
from hyperfit_vision.tokens import tokens_to_images

_HEADER = 14
_GAP = 2


def masked_prefix(images: torch.Tensor, prefix_rows: int) -> torch.Tensor:
    """Keep the prefix rows; grey out the part the model had to invent."""
    out = images.clone()
    out[:, prefix_rows:] = 128
    return out


def completion_grid(columns: dict[str, torch.Tensor], path: str | Path, scale: int = 4) -> Path:
    """Write a PNG grid: `columns` maps a header to uint8 (N, H, W, 3) images, all the same N and size."""
    if not columns:
        raise HyperfitError("a grid needs at least one column")
    shapes = {tuple(v.shape) for v in columns.values()}
    if len(shapes) != 1:
        raise HyperfitError(f"all grid columns must hold the same number and size of images, got {sorted(shapes)}")
    n, h, w, _ = shapes.pop()
    cell_w, cell_h = w * scale, h * scale
    font = ImageFont.load_default()
    names = list(columns)
    label_w = max(cell_w, max(int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(s, font=font)) + 4 for s in names))
    width = len(names) * (label_w + _GAP) + _GAP
    height = _HEADER + n * (cell_h + _GAP) + _GAP
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, name in enumerate(names):
        x = _GAP + c * (label_w + _GAP)
        draw.text((x + 2, 1), name, fill=(0, 0, 0), font=font)
        for r in range(n):
            tile = Image.fromarray(np.ascontiguousarray(columns[name][r].numpy())).resize((cell_w, cell_h), Image.NEAREST)
            canvas.paste(tile, (x + (label_w - cell_w) // 2, _HEADER + _GAP + r * (cell_h + _GAP)))
    path = png_target(path)
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path


def grid_from_completions(files: dict[str, Path], path: Path, rows: int = 16, scale: int = 4) -> Path:
    """One grid: masked prefix | original | each named completion file (all of the same images)."""
    loaded = {name: load_completions(f) for name, f in files.items()}
    first = next(iter(loaded.values()))
    side = int(first["real_tokens"].shape[1] ** 0.5)
    palette, prefix_rows = first["palette"], int(first["prefix_rows"])
    real = tokens_to_images(first["real_tokens"][:rows], palette, side)
    columns = {"prefix": masked_prefix(real, prefix_rows), "original": real}
    for name, data in loaded.items():
        if not torch.equal(data["source_index"][:rows], first["source_index"][:rows]):
            raise HyperfitError(f"{name} completes other images than {next(iter(loaded))}; a grid compares the same ones")
        columns[name] = tokens_to_images(data["tokens"][:rows], data["palette"], side)
    return completion_grid(columns, path, scale=scale)
