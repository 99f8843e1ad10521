"""Complete images from their top rows: the prompt is [SOS, first prefix_rows*side pixels]; the completion file
(NAME.completions.safetensors) holds the generated and real tokens, the palette and which images they were."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from hyperfit_core import distributed_eval
from hyperfit_core.decoding import DecodingConfig
from hyperfit_core.device import resolve_device
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import COMPLETIONS, condition_file, read_completions, write_completions
from hyperfit_core.rundir import RunDir
from hyperfit_vision.data import LabelledImages
from hyperfit_vision.fast_decode import fast_complete_images
from hyperfit_vision.model import ImageModel
from hyperfit_vision.tokens import images_to_tokens


def prefix_rows_for(fraction: float, side: int) -> int:
    """Whole rows kept from the top: 0.25 of a 32-row image is 8 rows (256 tokens)."""
    rows = round(fraction * side)
    if not 1 <= rows < side:
        raise HyperfitError(f"a prefix of {fraction:g} of {side} rows is {rows} rows; it must keep between "
                            f"1 and {side - 1} whole rows")
    return rows


def complete_run(image_model: ImageModel, images: LabelledImages, prefix_fraction: float, decoding: DecodingConfig,
                 run: RunDir, name: str, blocker=None, logit_bias=None, batch_size: int | None = None,
                 device: str = "auto", mode: str = "auto", precision: str = "auto") -> torch.Tensor:
    """Complete `images` from their top rows with one model and decoding; saves the tokens in `run`.
    logit_bias: a LogitsProcessor run before the blocker (hyperfit_core.ranks.LogitBias)."""
    image_model.model.to(resolve_device(device))
    images = images.resized(image_model.side)
    side = image_model.side
    prefix_rows = prefix_rows_for(prefix_fraction, side)
    tokens = images_to_tokens(images.images, image_model.palette, sos=image_model.sos)
    # the core decode loop on the static-cache engine: HF generate's greedy tokens (tested), less work per step
    # under torchrun each process completes its own contiguous part of the images (its own blocker and static
    # cache); every process gets them all back in order, the main process writes them
    processors = [p for p in (logit_bias, blocker) if p is not None]
    completed = distributed_eval.map_items(len(tokens), lambda part: fast_complete_images(
        image_model.model, tokens[part], prefix_rows, side, decoding, processors=processors, batch_size=batch_size,
        mode=mode, precision=precision))
    record = {"event": "completed", "condition": name, "images": len(images), "prefix_rows": prefix_rows,
              "decoding": decoding.to_dict()}
    blocker_stats = distributed_eval.summed_counts(lambda: blocker.stats() if blocker is not None else None)
    if blocker_stats is not None:
        record["blocker"] = blocker_stats
    run.log(record)
    if not run.writer:
        return completed
    write_completions(condition_file(run.path, name, COMPLETIONS), tokens=completed.cpu().numpy(),
                      real_tokens=tokens[:, 1:].numpy(), source_index=images.source_index.numpy(),
                      prefix_rows=prefix_rows, palette=image_model.palette.detach().float().cpu().numpy())
    return completed


def load_completions(path: str | Path) -> dict:
    """A completions file (hyperfit_core.formats.read_completions, checked) with its arrays as tensors."""
    return {key: torch.from_numpy(value) if key != "prefix_rows" else value
            for key, value in read_completions(path).items()}




def completion_sequences(path, sos: int) -> dict[str, tuple[torch.Tensor, int]]:
    """{condition: ([SOS] + completed pixel tokens, 1 + prefix tokens)} of a complete run (or one of its
    NAME.completions.safetensors files): what `analyze --ranks` scores."""
    from hyperfit_core.formats import condition_files_of

    out = {}
    for name, file in condition_files_of(path, COMPLETIONS).items():
        data = load_completions(file)
        tokens = data["tokens"].long()
        side = math.isqrt(tokens.shape[1])
        start = torch.full((len(tokens), 1), sos, dtype=torch.long)
        out[name] = (torch.cat([start, tokens], dim=1), 1 + int(data["prefix_rows"]) * side)
    return out
