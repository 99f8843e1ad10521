"""Complete images from their top rows: the prompt is [SOS, first prefix_rows*side pixels]."""

from __future__ import annotations

import torch

from hyperfit_core.decoding import DecodingConfig, generate_tokens
from hyperfit_core.errors import HyperfitError


def prefix_rows_for(fraction: float, side: int) -> int:
    """Whole rows kept from the top: 0.25 of a 32-row image is 8 rows (256 tokens)."""
    rows = round(fraction * side)
    if not 1 <= rows < side:
        raise HyperfitError(f"a prefix of {fraction:g} of {side} rows is {rows} rows; it must keep between "
                            f"1 and {side - 1} whole rows")
    return rows


def complete_images(model, tokens: torch.Tensor, prefix_rows: int, side: int,
                    decoding: DecodingConfig | None = None, processors=(), batch_size: int = 64,
                    progress: bool = True) -> torch.Tensor:
    """Generate everything below the first `prefix_rows` rows of each image.

    `tokens` are (N, 1 + side*side) sequences starting with SOS; returns (N, side*side) pixel tokens whose
    first prefix_rows*side entries are the prompt's, unchanged.
    """
    if tokens.ndim != 2 or tokens.shape[1] != 1 + side * side:
        raise HyperfitError(f"expected (N, {1 + side * side}) tokens with SOS, got {tuple(tokens.shape)}")
    if not 1 <= prefix_rows < side:
        raise HyperfitError(f"the prefix must be between 1 and {side - 1} rows of a {side}-row image, got {prefix_rows}")
    prompt = tokens[:, :1 + prefix_rows * side]
    new = side * side - prefix_rows * side
    out = generate_tokens(model, prompt, new, decoding, processors=processors, batch_size=batch_size,
                          progress=progress)
    return out[:, 1:]
