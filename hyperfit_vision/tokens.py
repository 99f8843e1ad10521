"""Images <-> ImageGPT token sequences: nearest palette colour, row-major, SOS = vocab_size - 1 in front.

(OpenAI's sample code forgets the SOS token when it builds the prompt; we always prepend it.)
"""

from __future__ import annotations

import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_vision.palette import nearest_colour


def images_to_tokens(images: torch.Tensor, palette: torch.Tensor, sos: int | None = None) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> (N, H*W) palette ids, or (N, 1 + H*W) with `sos` prepended."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise HyperfitError(f"images must be (N, H, W, 3), got shape {tuple(images.shape)}")
    tokens = nearest_colour(images.reshape(-1, 3), palette).reshape(len(images), -1)
    if sos is not None:
        tokens = torch.cat([torch.full((len(tokens), 1), sos, dtype=torch.long), tokens], dim=1)
    return tokens


def tokens_to_images(tokens: torch.Tensor, palette: torch.Tensor, side: int) -> torch.Tensor:
    """(N, side*side) palette ids -> uint8 (N, side, side, 3). Exact inverse for palette colours."""
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    if tokens.ndim != 2 or tokens.shape[1] != side * side:
        raise HyperfitError(f"expected (N, {side * side}) pixel tokens, got shape {tuple(tokens.shape)}")
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= len(palette)):
        raise HyperfitError(f"token ids must lie in [0, {len(palette)}) to map to colours")
    return palette.round().clamp(0, 255).to(torch.uint8)[tokens].reshape(len(tokens), side, side, 3)
