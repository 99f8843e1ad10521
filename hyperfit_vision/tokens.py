"""Images <-> ImageGPT token sequences: nearest palette colour, row-major, SOS = vocab_size - 1 in front.

(OpenAI's sample code forgets the SOS token when it builds the prompt; we always prepend it.)
"""

from __future__ import annotations

import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import tokens_to_rgb
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
    """(N, side*side) palette ids -> uint8 (N, side, side, 3). Exact inverse for palette colours.
    (hyperfit_core.formats.tokens_to_rgb decodes, in numpy, as hyperfit_rate does.)"""
    tokens = torch.as_tensor(tokens, dtype=torch.long).cpu().numpy()
    return torch.from_numpy(tokens_to_rgb(tokens, torch.as_tensor(palette).detach().float().cpu().numpy(), side))
