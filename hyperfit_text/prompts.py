"""Where `hyperfit text generate` gets its contexts: a train run's own held-out prompts, a prompts file of the
user's, or held-out spans drawn from any corpus (so a model hyperfitted on one corpus is evaluated on another).

Every source gives a `HeldOut` of `context`-token contexts; references (the true continuation) exist for the
train run's prompts and for corpus spans, and are empty for a prompts file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import iter_jsonl
from hyperfit_core.sequences import TokenSequences
from hyperfit_text.data import TextSource
from hyperfit_text.splits import HeldOut, tokenize_corpus


def prompts_from_file(path: str | Path, text_model, context: int, text_field: str = "prompt") -> HeldOut:
    """One prompt per line (.txt) or one JSON object per line (.jsonl, field `text_field`), each cut to its first
    `context` tokens; a prompt shorter than that is an error naming its line."""
    path = Path(path)
    if not path.is_file():
        raise HyperfitError(f"prompts file not found: {path}")
    if path.suffix.lower() == ".jsonl":
        numbered = list(iter_jsonl(path))
        for number, record in numbered:
            if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
                raise HyperfitError(f"{path}:{number}: no string field {text_field!r}; name the field with "
                                    "--prompt-field")
        numbered = [(number, record[text_field]) for number, record in numbered]
    else:
        try:
            # lines end at "\n" only: str.splitlines() would also split a prompt at U+2028 / U+0085 / U+2029
            lines = [line.removesuffix("\r") for line in path.read_text(encoding="utf-8").split("\n")]
        except UnicodeDecodeError as exc:
            raise HyperfitError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
        numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if not numbered:
        raise HyperfitError(f"{path} holds no prompts")
    texts = [text for _, text in numbered]
    encoded = text_model.encode(texts)
    short = [(number, len(ids)) for (number, _), ids in zip(numbered, encoded) if len(ids) < context]
    if short:
        number, length = short[0]
        raise HyperfitError(f"{path}:{number}: the prompt has {length} tokens, fewer than --context {context} "
                            f"({len(short)} prompt(s) too short); lower --context or lengthen them")
    contexts = torch.tensor([ids[:context] for ids in encoded], dtype=torch.long)
    return HeldOut(contexts, torch.zeros((len(contexts), 0), dtype=torch.long),
                   torch.tensor([number for number, _ in numbered]))


def prompts_from_corpus(source: TextSource, text_model, count: int, context: int, reference: int, seed: int,
                        avoid: TokenSequences | None = None, max_tokens: int | None = None,
                        stream_seed: int = 0) -> HeldOut:
    """`count` random (context, reference) spans of a corpus at disjoint positions, none overlapping `avoid`'s
    windows when the corpus is the one they were cut from (`avoid.source_index` = their starts in its stream,
    rebuilt exactly by passing the train run's `max_tokens` and `stream_seed`)."""
    corpus = tokenize_corpus(source.load(), text_model, max_tokens, seed=stream_seed)
    stream = corpus.ids
    span = context + reference
    free = torch.ones(len(stream), dtype=torch.bool)
    if avoid is not None:
        for start in avoid.source_index.tolist():
            free[start:start + avoid.length - 1] = False
    slots = torch.arange(0, len(stream) - span + 1, span)  # non-overlapping slots, each wholly free or not used
    usable = slots[torch.tensor([bool(free[s:s + span].all()) for s in slots.tolist()], dtype=torch.bool)] \
        if len(slots) else slots
    if len(usable) < count:
        raise HyperfitError(f"{source.source} has room for {len(usable)} held-out spans of {context}+{reference} "
                            f"tokens outside the training windows; asked for {count}")
    starts = usable[torch.randperm(len(usable), generator=torch.Generator().manual_seed(seed))[:count]]
    starts = torch.sort(starts).values
    spans = stream[starts[:, None] + torch.arange(span)]
    return HeldOut(spans[:, :context].clone(), spans[:, context:].clone(), starts)
