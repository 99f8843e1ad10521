"""Continuations made outside hyperfit (vLLM, TGI, any server), brought into `hyperfit text evaluate`.

The file: JSON lines, one per continuation, in prompt order:

    {"context": "text the model continued", "continuation": "what it wrote", "reference": "the true text"}

`context` may be spelled `prompt`; `reference` is optional (without it there is no perplexity and no human row).
Other fields are kept out of the way (a `NAME.generations.jsonl` of `hyperfit text generate` is such a file too).
Texts are re-encoded with `--model`'s tokenizer (no special tokens; BOS once, as hyperfit's own runs). Token
metrics compare equal lengths: every continuation is cut to the shortest one's tokens (and the references to the
same), every context to its last tokens as many as the shortest context has; one line says so when it cuts.
"""

from __future__ import annotations

from pathlib import Path

import click
import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import iter_jsonl

CONTEXT_FIELDS = ("context", "prompt")


def _field(record: dict, names: tuple, where: str, required: bool = True) -> str | None:
    for name in names:
        if isinstance(record.get(name), str):
            return record[name]
    if required:
        raise HyperfitError(f"{where}: no string field {' or '.join(map(repr, names))}")
    return None


def load_tokenizer_only(model: str, gguf_file: str | None = None):
    """A TextModel without weights: the tokenizer and BOS of `model` (hub id, folder or GGUF)."""
    from transformers import AutoTokenizer

    from hyperfit_text.model import TextModel, detect_adds_bos, prepare_tokenizer, split_gguf_path

    model, gguf_file = split_gguf_path(model, gguf_file)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, **({"gguf_file": gguf_file} if gguf_file else {}))
    except (OSError, ValueError, KeyError) as exc:
        raise HyperfitError(f"cannot load the tokenizer of {model!r}: {str(exc).splitlines()[0]}") from None
    bos_id = prepare_tokenizer(tokenizer)
    return TextModel(None, tokenizer, bos_id, detect_adds_bos(tokenizer, bos_id), model, gguf_file)


def _cut(rows: list[list[int]], length: int, last: bool = False) -> torch.Tensor:
    if length == 0:
        return torch.zeros(len(rows), 0, dtype=torch.long)
    return torch.tensor([row[-length:] if last else row[:length] for row in rows], dtype=torch.long)


def read_external(path: str | Path, model: str | None, gguf_file: str | None = None) -> dict:
    """The continuations of an outside JSONL as evaluate's tensors and texts: {"generated", "contexts",
    "references", "texts", "cut"}; an unreadable or malformed file is one error naming its line."""
    path = Path(path)
    if model is None:
        raise HyperfitError(f"{path} is a JSONL of continuations: pass --model M, whose tokenizer re-encodes its "
                            "texts (and which perplexity loads)")
    numbered = list(iter_jsonl(path))
    if len(numbered) < 2:
        raise HyperfitError(f"{path}: evaluation needs at least two continuations, found {len(numbered)}")
    contexts, continuations, references = [], [], []
    for number, record in numbered:
        where = f"{path}:{number}"
        if not isinstance(record, dict):
            raise HyperfitError(f"{where}: not a JSON object")
        contexts.append(_field(record, CONTEXT_FIELDS, where))
        continuations.append(_field(record, ("continuation",), where))
        references.append(_field(record, ("reference",), where, required=False))
    if any(r is None for r in references) and not all(r is None for r in references):
        raise HyperfitError(f"{path}: some lines have a reference and some do not; give all or none")
    text_model = load_tokenizer_only(model, gguf_file)
    encoded = {"contexts": text_model.encode(contexts), "generated": text_model.encode(continuations),
               "references": text_model.encode(references) if references[0] is not None else [[]] * len(contexts)}
    lengths = {name: min(len(row) for row in rows) for name, rows in encoded.items()}
    if lengths["generated"] == 0:
        raise HyperfitError(f"{path}: a continuation encodes to no tokens")
    lengths["references"] = min(lengths["references"], lengths["generated"])
    cut = {name: length for name, length in lengths.items() if any(len(row) != length for row in encoded[name])}
    if cut:
        click.echo(f"note: {path.name}: cut to equal token counts (" + ", ".join(
            f"{name} to {length}" for name, length in cut.items()) + ") for token metrics", err=True)
    tensors = {"generated": _cut(encoded["generated"], lengths["generated"]),
               "contexts": _cut(encoded["contexts"], lengths["contexts"], last=True),  # the tokens next to it
               "references": _cut(encoded["references"], lengths["references"])}
    # the context as written (the continuation followed all of it: fluency is scored after it)
    texts = [{"context": c, "continuation": text_model.decode(g), "reference": text_model.decode(r)}
             for c, g, r in zip(contexts, tensors["generated"], tensors["references"])]
    return {**tensors, "texts": texts, "cut": cut, "tokenizer": text_model.describe()}
