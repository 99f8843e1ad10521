"""Continue held-out contexts with a causal LM (greedy / top-p / blocker), from a train run's prompts, a prompts
file or another corpus (hyperfit_text.prompts). A generate run holds NAME.generations.safetensors
(token ids) and NAME.generations.jsonl (decoded text, and the display text `hyperfit rate` shows), and records
which train run its prompts came from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import torch
from safetensors.torch import save_file

from hyperfit_core import distributed_eval
from hyperfit_core.atomic import atomic_path, checked_out_dir
from hyperfit_core.blocker import CitationBlocker
from hyperfit_core.decoding import DecodingConfig, generate_tokens, model_max_positions, positions_needed
from hyperfit_core.device import resolve_device
from hyperfit_core.device_map import load_kwargs
from hyperfit_core.device_map import placement as device_placement
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import (GENERATION_TEXTS, GENERATIONS, PROMPTS, TRAIN_TOKENS, condition_file,
                                   write_jsonl)
from hyperfit_core.ranks import LogitBias, load_logit_bias, output_classes
from hyperfit_core.recipe import read_spec
from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences
from hyperfit_text.data import TextSource
from hyperfit_text.model import TextModel, load_text_model, split_gguf_path, tokenizer_fingerprint
from hyperfit_text.prompts import prompts_from_corpus, prompts_from_file
from hyperfit_text.splits import HeldOut
from hyperfit_core.options import declared
from hyperfit_text.training import TextModality, TextTrainOptions, find_text_train_run, resolved_model


@dataclass
class GenerateSpec:
    model: str
    train_run: str | None = None  # the run whose windows the blocker indexes (default: the run the model came from)
    gguf_file: str | None = None
    max_new_tokens: int = 256
    num_eval: int | None = None  # None: every prompt
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    blocker: bool = False
    blocker_n: int = 5
    batch_size: int = 32
    device: str = "auto"
    name: str | None = None
    prompts: str | None = None  # a .txt / .jsonl file of the user's prompts
    prompts_from: str | None = None  # a corpus (TextSource) to draw held-out contexts from
    prompt_field: str = "prompt"  # field of a .jsonl prompts file / column of a --prompts-from corpus
    context: int = 32  # tokens per context for --prompts / --prompts-from
    prompt_seed: int = 0  # which --prompts-from spans
    precision: str = "auto"  # decoding arithmetic: auto = bf16 on CUDA, fp32 on CPU
    logit_bias: str | None = None  # a fixed per-token bias added to the logits (hyperfit_core.ranks.LogitBias)
    device_map: str | None = None  # split the model over devices (transformers' device_map), one process
    max_memory: str | None = None  # "0=70GiB,cpu=200GiB": --device-map's per-device limits

    def resolved_name(self) -> str:
        return self.name or (self.decoding.name + ("-logit-bias" if self.logit_bias else "")
                             + (f"-blocked{self.blocker_n}" if self.blocker else ""))


def _check_same_tokenizer(text_model: TextModel, metadata: dict, source: Path) -> None:
    fingerprint = tokenizer_fingerprint(text_model.tokenizer)
    if metadata.get("tokenizer") not in (None, fingerprint) or \
            int(metadata.get("bos_id", text_model.bos_id)) != text_model.bos_id:
        raise HyperfitError(f"the prompts in {source} were tokenised with another tokenizer than "
                            f"{text_model.source}'s; use a model with the same vocabulary")


def _check_positions(limit: int | None, prompt: int, new_tokens: int) -> None:
    """The core decoder's position check, before anything is written, in the text command's options."""
    read = positions_needed(prompt, new_tokens)
    if limit is None or read <= limit:
        return
    room = limit - prompt + 1
    raise HyperfitError(f"the model reads the {prompt}-token prompt ([BOS] + {prompt - 1} context tokens) and the "
                        f"first {new_tokens - 1} of {new_tokens} new tokens: {read} positions, but it has {limit}; "
                        + (f"--max-new-tokens can be at most {room} here" if room >= 1 else "lower --context"))


def _train_run(spec: GenerateSpec) -> Path | None:
    """The train run whose data the blocker indexes and whose held-out contexts are the default prompts: --train-run,
    else the run the model was saved in; None for any other model (a hub id, a folder, a GGUF), which then needs
    --prompts or --prompts-from and cannot use the blocker."""
    if spec.train_run:
        return find_text_train_run(spec.train_run)
    try:
        return find_text_train_run(spec.model)
    except HyperfitError:
        if spec.blocker:
            raise HyperfitError(f"--blocker forbids continuing the hyperfitting data, and {spec.model} is not inside "
                                "a text train run: pass --train-run RUN") from None
        if not (spec.prompts or spec.prompts_from):
            raise HyperfitError(f"{spec.model} is not inside a text train run, so there are no held-out contexts "
                                "to continue: pass --prompts FILE (or --prompts-from CORPUS, or --train-run RUN)"
                                ) from None
        return None


def _held_out(spec: GenerateSpec, text_model: TextModel, source: Path | None,
              train_tokens: TokenSequences | None) -> HeldOut:
    """The contexts to continue: the train run's held-out prompts, a prompts file, or spans of a corpus."""
    if spec.prompts and spec.prompts_from:
        raise HyperfitError("pass --prompts or --prompts-from, not both")
    if spec.prompts:
        return prompts_from_file(spec.prompts, text_model, spec.context, spec.prompt_field).first(spec.num_eval)
    if spec.prompts_from and source is None:  # no training windows to stay clear of
        count = spec.num_eval or declared(TextTrainOptions, "num_eval").default
        return prompts_from_corpus(TextSource(spec.prompts_from), text_model, count,
                                   spec.context, spec.max_new_tokens, spec.prompt_seed)
    if spec.prompts_from:
        train_spec, _ = read_spec(source)
        options = train_spec.typed_options(TextModality)
        same = TextSource(**train_spec.data).source == spec.prompts_from
        corpus = TextSource(spec.prompts_from, train_spec.data.get("text_field", "text"))
        count = spec.num_eval or options.num_eval
        return prompts_from_corpus(corpus, text_model, count, spec.context, spec.max_new_tokens, spec.prompt_seed,
                                   avoid=train_tokens if same else None,
                                   max_tokens=options.max_corpus_tokens if same else None,
                                   stream_seed=train_spec.resolved_data_seed)
    held_out, metadata = HeldOut.load(source / PROMPTS)
    _check_same_tokenizer(text_model, metadata, source)
    return held_out.first(spec.num_eval)


def generate_run(spec: GenerateSpec, out: str | Path = "runs") -> RunDir:
    """Continue held-out contexts with one model and decoding; returns the run dir."""
    if spec.max_new_tokens < 1:
        raise HyperfitError("--max-new-tokens must be at least 1")
    if spec.batch_size < 1:
        raise HyperfitError("--batch-size must be at least 1")
    placement = load_kwargs(spec.device_map, spec.max_memory, spec.device)
    distributed_eval.start(spec.device)  # under torchrun: join the group before the model is loaded
    with checked_out_dir(out):  # nothing stays if an input is bad
        spec.model, spec.gguf_file = split_gguf_path(spec.model, spec.gguf_file)
        source = _train_run(spec)
        train_tokens = TokenSequences.load(source / TRAIN_TOKENS) if source is not None else None
        device = resolve_device(spec.device)
        text_model = load_text_model(spec.model, spec.gguf_file, device=str(device), placement=placement)
        held_out = _held_out(spec, text_model, source, train_tokens)
        prompts = text_model.with_bos(held_out.contexts)
        _check_positions(model_max_positions(text_model.model), prompts.shape[1], spec.max_new_tokens)
        bias = LogitBias(load_logit_bias(spec.logit_bias, output_classes(text_model.model))) \
            if spec.logit_bias else None
    citation = CitationBlocker(train_tokens.ids, n=spec.blocker_n) if spec.blocker else None
    name = spec.resolved_name()
    run = distributed_eval.shared_run(out, "text-generate")
    run.write_config({**distributed_eval.describe(), "model": resolved_model(spec.model), "gguf_file": spec.gguf_file,
                      "train_run": str(source.resolve()) if source is not None else None, "name": name,
                      "max_new_tokens": spec.max_new_tokens,
                      "prompts": len(held_out), "prompt_source": spec.prompts or spec.prompts_from or "train run",
                      "context": held_out.contexts.shape[1], "decoding": spec.decoding.to_dict(),
                      "blocker": spec.blocker, "blocker_n": spec.blocker_n, "logit_bias": spec.logit_bias,
                      "tokenizer": text_model.describe(),
                      "device_map": device_placement(text_model.model), "max_memory": placement.get("max_memory")},
                     seed=spec.decoding.seed, command="text generate")
    if run.writer:
        click.echo(f"continuing {len(held_out)} contexts of {held_out.contexts.shape[1]} tokens by "
                   f"{spec.max_new_tokens} ({name}) -> {run.path}", err=True)
    # each process continues its own contiguous part of the contexts (sampling: seeded per process, so sampled
    # tokens depend on the process count; greedy tokens do not)
    processors = [p for p in (bias, citation) if p is not None]
    started = time.perf_counter()
    tokens = distributed_eval.map_items(len(prompts), lambda part: generate_tokens(
        text_model.model, prompts[part], spec.max_new_tokens, spec.decoding, processors=processors,
        batch_size=spec.batch_size, precision=spec.precision))
    generated = tokens[:, prompts.shape[1]:].contiguous()
    # wall time of the decoding (every process's part, gathered): what scripts/bench_speed.py's data-parallel row
    # and docs/scale.md's time estimates read
    record = {"event": "generated", "name": name, "prompts": len(held_out), "new_tokens": spec.max_new_tokens,
              "seconds": round(time.perf_counter() - started, 3), **distributed_eval.describe()}
    blocker_stats = distributed_eval.summed_counts(lambda: citation.stats() if citation is not None else None)
    if blocker_stats is not None:
        record["blocker"] = blocker_stats
    run.log(record)
    if not run.writer:  # the main process writes the gathered generations
        return run
    save_generations(run, name, text_model, held_out, generated)
    return run


def save_generations(run: RunDir, name: str, text_model: TextModel, held_out: HeldOut,
                     generated: torch.Tensor) -> None:
    with atomic_path(condition_file(run.path, name, GENERATIONS)) as tmp:
        save_file({"generated": generated, "contexts": held_out.contexts.contiguous(),
                   "references": held_out.references.contiguous(), "starts": held_out.starts.contiguous(),
                   "bos_id": torch.tensor(text_model.bos_id)}, str(tmp))
    write_jsonl(condition_file(run.path, name, GENERATION_TEXTS), generation_rows(text_model, held_out, generated))


def generation_rows(text_model: TextModel, held_out: HeldOut, generated: torch.Tensor) -> list[dict]:
    """One JSON line per generation. `context` / `continuation` / `reference` decode every token (special ones
    too, like the token file). `display` is what a person reads (`hyperfit rate` shows it): special tokens left
    out, and the reference cut to the continuation's token count, so a rater cannot tell the original from a
    continuation by its length. `tokens` counts each part whole; `special_tokens` counts those left out."""
    special = text_model.special_ids()
    rows = []
    for i, continuation in enumerate(generated):
        context, reference = held_out.contexts[i], held_out.references[i]
        shown = {"context": context, "continuation": continuation, "reference": reference[:len(continuation)]}
        rows.append({"index": i, "context": text_model.decode(context),
                     "continuation": text_model.decode(continuation), "reference": text_model.decode(reference),
                     "display": {part: text_model.decode(ids, skip_special=True) for part, ids in shown.items()},
                     "tokens": {"context": len(context), "continuation": len(continuation),
                                "reference": len(reference)},
                     "special_tokens": {part: sum(int(t) in special for t in ids.tolist())
                                        for part, ids in shown.items()}})
    return rows


def generation_sequences(path) -> dict[str, tuple[torch.Tensor, int]]:
    """{condition: ([BOS] + context + generated ids, 1 + context length)} of a generate run (or one of its
    NAME.generations.safetensors files): what `analyze --ranks` scores."""
    from safetensors.torch import load_file

    from hyperfit_core.formats import condition_files_of

    out = {}
    for name, file in condition_files_of(path, GENERATIONS).items():
        tensors = load_file(str(file))
        contexts, generated = tensors["contexts"].long(), tensors["generated"].long()
        bos = torch.full((len(contexts), 1), int(tensors["bos_id"]), dtype=torch.long)
        out[name] = (torch.cat([bos, contexts, generated], dim=1), 1 + contexts.shape[1])
    return out
