"""The text side of the one recipe (hyperfit_core.recipe): random token windows of a corpus -> [BOS + window].

`spec.data` is a `TextSource` as a dict; `spec.options` is a `TextTrainOptions` (gguf_file, window, num_eval
held-out prompts, context, reference, max_corpus_tokens). Besides the recipe's files a text train run holds
prompts.safetensors: held-out (context, reference) spans, disjoint from every training window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hyperfit_core.decoding import model_max_positions
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import PROMPTS
from hyperfit_core.options import option
from hyperfit_core.recipe import Prepared, TrainSpec, train_run
from hyperfit_core.rundir import RunDir
from hyperfit_text.data import TextSource
from hyperfit_text.model import load_text_model, split_gguf_path, tokenizer_fingerprint
from hyperfit_text.splits import sample_splits, tokenize_corpus


@dataclass
class TextTrainOptions:
    """The text adapter's own train options (TrainSpec.options), each declared once: `text train` (and generate's
    --gguf-file and --context) derive their options from these."""

    gguf_file: str | None = option(None, "GGUF file inside --model (a folder or hub id); `--model dir/file.gguf` "
                                         "also works.", kind=str)
    window: int = option(256, "Tokens per training window (after BOS).", min=1, unit="tokens")
    num_eval: int = option(300, "How many held-out contexts to set aside, disjoint from every window.", min=1,
                           what="number of held-out contexts")
    context: int = option(32, "Tokens per held-out context (the prompt after BOS).", min=1, unit="tokens")
    reference: int = option(256, "Tokens of true continuation kept after each held-out context (scored for "
                                 "perplexity).", min=1, unit="tokens")
    max_corpus_tokens: int | None = option(None, "Tokenise only this many tokens, from documents in seeded random "
                                                 "order (default: all; big datasets).", kind=int, min=1,
                                           unit="tokens")


def resolved_model(model: str) -> str:
    """A local model folder as an absolute path (--resume and evaluate may run from another folder)."""
    return str(Path(model).resolve()) if Path(model).exists() else model


def _check_positions(limit: int | None, options: TextTrainOptions) -> None:
    if limit is None:
        return
    if options.window > limit:  # [BOS] + window feeds `window` positions
        raise HyperfitError(f"a {options.window}-token window needs {options.window} positions but the "
                            f"model has {limit}")
    needed = 1 + options.context + options.reference  # evaluate reads [BOS] + context + reference
    if needed > limit:
        raise HyperfitError(f"[BOS] + {options.context} context + {options.reference} reference tokens "
                            f"need {needed} positions but the model has {limit}")


class TextModality:
    name = "text"
    options = TextTrainOptions

    def prepare(self, spec: TrainSpec) -> Prepared:
        options = spec.typed_options(self)
        spec.model, options.gguf_file = split_gguf_path(spec.model, options.gguf_file)
        spec.model = resolved_model(spec.model)
        docs = TextSource(**spec.data).load()  # cheap checks on the text first, before loading a model
        text_model = load_text_model(spec.model, options.gguf_file)
        _check_positions(model_max_positions(text_model.model), options)
        seed = spec.resolved_data_seed
        corpus = tokenize_corpus(docs, text_model, options.max_corpus_tokens, seed=seed)
        data, held_out = sample_splits(corpus, text_model.bos_id, spec.num_train, options.window,
                                       options.num_eval, options.context, options.reference, seed=seed)
        fingerprint = tokenizer_fingerprint(text_model.tokenizer)

        def write_prompts(run: RunDir) -> None:
            if run.writer:
                held_out.save(run / PROMPTS, text_model.bos_id, fingerprint)

        info = {"tokenizer": {**text_model.describe(), "fingerprint": fingerprint}, "corpus": corpus.describe(),
                "log": {"windows": len(data), "window": options.window, "prompts": len(held_out),
                        **corpus.describe()}}
        return Prepared(model=text_model.model, data=data, info=info, write_extra=write_prompts,
                        describe=f"hyperfitting {spec.model} on {len(data)} windows of {data.length - 1} tokens",
                        save_extra=text_model.tokenizer.save_pretrained)

    def reload(self, spec: TrainSpec, run: RunDir) -> Prepared:
        text_model = load_text_model(spec.model, spec.typed_options(self).gguf_file)
        return Prepared(model=text_model.model, data=None, describe=f"resuming {spec.model}",
                        save_extra=text_model.tokenizer.save_pretrained)


def train_text(spec: TrainSpec | None, out: str | Path = "runs", **kwargs) -> RunDir:
    """hyperfit_core.recipe.train_run for text (kwargs: resume, at, name, command, cli)."""
    return train_run(spec, TextModality(), out, **kwargs)


def find_text_train_run(path: str | Path) -> Path:
    """A text train run dir (or its model/ folder): the one that holds held-out prompts."""
    from hyperfit_core.recipe import find_train_run

    try:
        run = find_train_run(path)
    except HyperfitError:
        run = None
    if run is None or not (run / PROMPTS).is_file():
        raise HyperfitError(f"{path} is not a text train run (no {PROMPTS}); pass --train-run")
    return run
