"""The text side of the one recipe (hyperfit_core.recipe): random token windows of a corpus -> [BOS + window].

`spec.data` is a `TextSource` as a dict; `spec.options` holds gguf_file, window, num_eval (held-out prompts),
context, reference and max_corpus_tokens. Besides the recipe's files a text train run holds
prompts.safetensors: held-out (context, reference) spans, disjoint from every training window.
"""

from __future__ import annotations

from pathlib import Path

from hyperfit_core.decoding import model_max_positions
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import PROMPTS
from hyperfit_core.recipe import Prepared, TrainSpec, train_run
from hyperfit_core.rundir import RunDir
from hyperfit_text.data import TextSource
from hyperfit_text.model import load_text_model, split_gguf_path, tokenizer_fingerprint
from hyperfit_text.sampling import sample_splits, tokenize_corpus

TEXT_OPTIONS = {"gguf_file": None, "window": 256, "num_eval": 300, "context": 32, "reference": 256,
                "max_corpus_tokens": None}


def resolved_model(model: str) -> str:
    """A local model folder as an absolute path (--resume and evaluate may run from another folder)."""
    return str(Path(model).resolve()) if Path(model).exists() else model


def _check_positions(limit: int | None, options: dict) -> None:
    if limit is None:
        return
    if options["window"] > limit:  # [BOS] + window feeds `window` positions
        raise HyperfitError(f"a {options['window']}-token window needs {options['window']} positions but the "
                            f"model has {limit}")
    needed = 1 + options["context"] + options["reference"]  # evaluate reads [BOS] + context + reference
    if needed > limit:
        raise HyperfitError(f"[BOS] + {options['context']} context + {options['reference']} reference tokens "
                            f"need {needed} positions but the model has {limit}")


class TextModality:
    name = "text"

    def prepare(self, spec: TrainSpec) -> Prepared:
        options = {**TEXT_OPTIONS, **spec.options}
        spec.model, options["gguf_file"] = split_gguf_path(spec.model, options["gguf_file"])
        spec.model = resolved_model(spec.model)
        spec.options = options
        docs = TextSource(**spec.data).load()  # cheap checks on the text first, before loading a model
        text_model = load_text_model(spec.model, options["gguf_file"])
        _check_positions(model_max_positions(text_model.model), options)
        seed = spec.resolved_data_seed
        corpus = tokenize_corpus(docs, text_model, options["max_corpus_tokens"], seed=seed)
        data, held_out = sample_splits(corpus, text_model.bos_id, spec.num_train, options["window"],
                                       options["num_eval"], options["context"], options["reference"], seed=seed)
        fingerprint = tokenizer_fingerprint(text_model.tokenizer)

        def write_prompts(run: RunDir) -> None:
            if run.writer:
                held_out.save(run / PROMPTS, text_model.bos_id, fingerprint)

        info = {"tokenizer": {**text_model.describe(), "fingerprint": fingerprint}, "corpus": corpus.describe(),
                "log": {"windows": len(data), "window": options["window"], "prompts": len(held_out),
                        **corpus.describe()}}
        return Prepared(model=text_model.model, data=data, info=info, write_extra=write_prompts,
                        describe=f"hyperfitting {spec.model} on {len(data)} windows of {data.length - 1} tokens",
                        save_extra=text_model.tokenizer.save_pretrained)

    def reload(self, spec: TrainSpec, run: RunDir) -> Prepared:
        text_model = load_text_model(spec.model, spec.options.get("gguf_file"))
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
