"""Documents -> one token stream -> N random training windows and M held-out prompts, never overlapping.

The paper hyperfits on 2000 random 256-token sequences. Here every document is tokenised on its own and the
documents are joined, in order, with the tokens of "\\n\\n" between them, into one stream; short documents
(Wikipedia leads) thereby add up to full windows. Training windows (`window` tokens each) and held-out spans
(`context` + `reference` tokens each) are then placed at random, seeded, non-overlapping positions of that
stream: no token position is shared between any two spans, so no prompt or reference token was trained on
at that position, and no training window repeats another. Each training sequence is `[BOS] + window`
(BOS at position 0 is input only, so all `window` real tokens are scored by the loss); each prompt fed to a
model is `[BOS] + context`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from hyperfit_core.atomic import atomic_path
from hyperfit_core.errors import HyperfitError
from hyperfit_core.sequences import TokenSequences

DOCUMENT_SEPARATOR = "\n\n"


@dataclass
class Corpus:
    ids: torch.Tensor  # 1-D stream of body token ids (no BOS)
    documents: int  # documents that went into the stream
    total_documents: int

    def describe(self) -> dict:
        return {"tokens": len(self.ids), "documents": self.documents, "total_documents": self.total_documents}


def tokenize_corpus(docs: list[str], text_model, max_tokens: int | None = None, seed: int = 0) -> Corpus:
    """Join the documents' tokens into one stream. With `max_tokens`, documents are taken in a seeded random
    order until the stream is that long (then cut), so a capped corpus still spans the whole source."""
    if max_tokens is not None and max_tokens < 1:
        raise HyperfitError("the corpus token cap must be at least 1")
    order = list(range(len(docs)))
    if max_tokens is not None:
        order = torch.randperm(len(docs), generator=torch.Generator().manual_seed(seed)).tolist()
    separator = text_model.encode([DOCUMENT_SEPARATOR])[0]
    pieces: list[list[int]] = []
    total, used, chunk = 0, 0, 256
    for first in range(0, len(order), chunk):
        for ids in text_model.encode([docs[i] for i in order[first:first + chunk]]):
            if pieces:
                pieces.append(separator)
                total += len(separator)
            pieces.append(ids)
            total += len(ids)
            used += 1
            if max_tokens is not None and total >= max_tokens:
                break
        if max_tokens is not None and total >= max_tokens:
            break
    # numpy concatenation: a Python list of every token id would cost ~30x the memory on a large corpus
    stream = torch.from_numpy(np.concatenate([np.asarray(piece, dtype=np.int64) for piece in pieces])) \
        if pieces else torch.zeros(0, dtype=torch.long)
    if max_tokens is not None:
        stream = stream[:max_tokens]
    if (stream == text_model.bos_id).any():
        # split_special_tokens keeps this from happening; if a tokenizer ignores it, BOS would occur twice
        raise HyperfitError("the tokenised text contains the BOS token; this tokenizer cannot encode the text "
                            "without special tokens")
    return Corpus(stream, used, len(docs))


def place_spans(total: int, lengths: torch.Tensor, seed: int) -> torch.Tensor:
    """Random, non-overlapping start positions in [0, total) for spans of the given lengths (any order).

    The spans are laid out in a random order, and the free tokens are split into gaps between them at
    sorted uniform cut points, so every span lands anywhere in the stream and none touch.
    """
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    free = total - int(lengths.sum())
    if free < 0:
        raise ValueError("spans do not fit")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=generator)
    cuts = torch.sort(torch.randint(0, free + 1, (len(lengths),), generator=generator)).values
    ordered = lengths[order]
    starts = torch.empty_like(lengths)
    starts[order] = cuts + torch.cumsum(ordered, 0) - ordered
    return starts


def spans_disjoint(starts: torch.Tensor, lengths: torch.Tensor) -> bool:
    order = torch.argsort(starts)
    starts, ends = starts[order], (starts + lengths)[order]
    return bool((starts[1:] >= ends[:-1]).all())


@dataclass
class HeldOut:
    """Held-out spans: `contexts` (the prompt after BOS) and the true `references` that follow them."""

    contexts: torch.Tensor
    references: torch.Tensor
    starts: torch.Tensor  # position of each context's first token in the corpus stream

    def __len__(self) -> int:
        return len(self.contexts)

    def save(self, path: str | Path, bos_id: int, fingerprint: str) -> None:
        with atomic_path(path) as tmp:
            save_file({"contexts": self.contexts.contiguous(), "references": self.references.contiguous(),
                       "starts": self.starts.contiguous()}, str(tmp),
                      metadata={"bos_id": str(bos_id), "tokenizer": fingerprint})

    @staticmethod
    def load(path: str | Path) -> tuple["HeldOut", dict]:
        path = Path(path)
        if not path.is_file():
            raise HyperfitError(f"held-out prompts not found: {path}")
        try:
            from safetensors import safe_open

            with safe_open(str(path), "pt") as handle:
                metadata = handle.metadata() or {}
            tensors = load_file(str(path))
            return HeldOut(tensors["contexts"], tensors["references"], tensors["starts"]), metadata
        except Exception as exc:
            raise HyperfitError(f"cannot read held-out prompts {path}: {exc}") from None

    def first(self, count: int | None) -> "HeldOut":
        if count is None:
            return self
        if count < 1:
            raise HyperfitError("the number of prompts must be at least 1")
        if count > len(self):
            raise HyperfitError(f"asked for {count} prompts but there are {len(self)}; pass --num-eval all "
                                "for every one")
        return HeldOut(self.contexts[:count], self.references[:count], self.starts[:count])


def sample_splits(corpus: Corpus, bos_id: int, num_train: int, window: int, num_eval: int, context: int,
                  reference: int, seed: int) -> tuple[TokenSequences, HeldOut]:
    """`num_train` training sequences [BOS + window] and `num_eval` held-out (context, reference) pairs."""
    for name, value in (("--num-train", num_train), ("--window", window), ("--num-eval", num_eval),
                        ("--context", context), ("--reference", reference)):
        if value < 1:
            raise HyperfitError(f"{name} must be at least 1, got {value}")
    stream = corpus.ids
    if len(stream) < window:
        raise HyperfitError(f"the text has only {len(stream)} tokens, shorter than one {window}-token window")
    held = context + reference
    lengths = torch.tensor([window] * num_train + [held] * num_eval)
    needed = int(lengths.sum())
    if needed > len(stream):
        raise HyperfitError(f"{num_train} windows of {window} tokens plus {num_eval} held-out spans of "
                            f"{context}+{reference} tokens need {needed} distinct token positions, but the text "
                            f"has {len(stream)}; lower --num-train/--num-eval or add text")
    starts = place_spans(len(stream), lengths, seed)
    assert spans_disjoint(starts, lengths)
    train_starts, held_starts = starts[:num_train], starts[num_train:]
    # gather each span's tokens by index arithmetic: start + 0..len-1
    windows = stream[train_starts[:, None] + torch.arange(window)]
    spans = stream[held_starts[:, None] + torch.arange(held)]
    bos = torch.full((num_train, 1), bos_id, dtype=torch.long)
    train = TokenSequences(torch.cat([bos, windows], dim=1), train_starts)
    return train, HeldOut(spans[:, :context].clone(), spans[:, context:].clone(), held_starts)
