"""Test oracle: image completion through the core decoder (HF-style generate), the plain path the static-cache
engine (hyperfit_vision.fast_decode) must equal token for token."""

import torch

from hyperfit_core.decoding import DecodingConfig, generate_tokens
from hyperfit_core.errors import HyperfitError


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


def record_engine_batches(monkeypatch) -> list[int]:
    """The batch size of every static-cache engine built from now on (fast_decode sizes them itself)."""
    import hyperfit_vision.fast_decode as fd

    sizes: list[int] = []
    real_init = fd.StaticImageGPT.__init__

    def spy(self, model, batch, *args, **kwargs):
        sizes.append(batch)
        real_init(self, model, batch, *args, **kwargs)

    monkeypatch.setattr(fd.StaticImageGPT, "__init__", spy)
    return sizes
