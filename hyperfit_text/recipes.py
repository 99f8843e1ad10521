"""Text recipes: hyperfit a causal LM on random text windows, then continue held-out 32-token contexts.

A train run dir holds train_tokens.safetensors ([BOS + window] per row, source_index = the window's start in
the token stream), prompts.safetensors (held-out contexts + references, disjoint from every window) and the
hyperfitted model/ (model + tokenizer, save_pretrained). A generate run holds NAME.generations.safetensors
(token ids) and NAME.generations.jsonl (decoded text), and records which train run its prompts came from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click
import torch
from safetensors.torch import save_file

from hyperfit_core.atomic import atomic_path, ensure_writable_dir
from hyperfit_core.decoding import DecodingConfig, generate_tokens, model_max_positions
from hyperfit_core.errors import HyperfitError
from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences
from hyperfit_core.train import TrainConfig, hyperfit
from hyperfit_text.data import TextSource
from hyperfit_text.model import TextModel, load_text_model, split_gguf_path, tokenizer_fingerprint
from hyperfit_text.sampling import HeldOut, sample_splits, tokenize_corpus

TRAIN_TOKENS = "train_tokens.safetensors"
PROMPTS = "prompts.safetensors"
GENERATIONS = "generations.safetensors"


@dataclass
class TrainSpec:
    model: str
    data: TextSource
    train: TrainConfig
    gguf_file: str | None = None
    num_train: int = 2000
    window: int = 256
    num_prompts: int = 300
    context: int = 32
    reference: int = 256
    max_corpus_tokens: int | None = None

    def to_dict(self) -> dict:
        record = asdict(self)
        record["data"] = self.data.describe()
        return record

    @classmethod
    def from_dict(cls, record: dict) -> "TrainSpec":
        record = dict(record)
        return cls(data=TextSource(**record.pop("data")), train=TrainConfig(**record.pop("train")), **record)


def train_run(spec: TrainSpec, out: str | Path = "runs", resume: str | Path | None = None) -> RunDir:
    """Hyperfit `spec.model` on `spec.num_train` random windows of `spec.data`; returns the run dir.

    With `resume`, the run's own config and token files are used, so the continued run is the same run.
    """
    if resume is not None:
        run = RunDir(resume)
        if not (run / "config.json").is_file():
            raise HyperfitError(f"{resume} is not a run dir (no config.json)")
        spec = TrainSpec.from_dict(json.loads((run / "config.json").read_text())["config"]["spec"])
        text_model = load_text_model(spec.model, spec.gguf_file)
        data = TokenSequences.load(run / TRAIN_TOKENS)
    else:
        ensure_writable_dir(out)  # fail before any work; the run dir itself is made once the inputs check out
        spec.model, spec.gguf_file = split_gguf_path(spec.model, spec.gguf_file)
        spec.model = _resolved(spec.model)  # --resume and evaluate may run from another folder
        docs = spec.data.load()  # cheap checks on the text first, before loading a model
        text_model = load_text_model(spec.model, spec.gguf_file)
        limit = model_max_positions(text_model.model)
        if limit is not None and spec.window > limit:  # [BOS] + window feeds `window` positions
            raise HyperfitError(f"a {spec.window}-token window needs {spec.window} positions but the model has {limit}")
        if limit is not None and 1 + spec.context + spec.reference > limit:  # evaluate reads [BOS]+context+reference
            raise HyperfitError(f"[BOS] + {spec.context} context + {spec.reference} reference tokens need "
                                f"{1 + spec.context + spec.reference} positions but the model has {limit}")
        corpus = tokenize_corpus(docs, text_model, spec.max_corpus_tokens, seed=spec.train.seed)
        data, held_out = sample_splits(corpus, text_model.bos_id, spec.num_train, spec.window, spec.num_prompts,
                                       spec.context, spec.reference, seed=spec.train.seed)
        run = RunDir.create(out, "text-train")
        fingerprint = tokenizer_fingerprint(text_model.tokenizer)
        run.write_config({"spec": spec.to_dict(), "tokenizer": {**text_model.describe(), "fingerprint": fingerprint},
                          "corpus": corpus.describe()}, seed=spec.train.seed, command="text train")
        data.save(run / TRAIN_TOKENS)
        held_out.save(run / PROMPTS, text_model.bos_id, fingerprint)
        run.log({"event": "data", "windows": len(data), "window": spec.window, "prompts": len(held_out),
                 **corpus.describe()})
    click.echo(f"hyperfitting {spec.model} on {len(data)} windows of {data.length - 1} tokens -> {run.path}",
               err=True)
    hyperfit(text_model.model, data, spec.train, run, resume=resume is not None,
             save_extra=text_model.tokenizer.save_pretrained)
    return run


def _resolved(model: str) -> str:
    """A local model folder as an absolute path; a hub id as it is."""
    return str(Path(model).resolve()) if Path(model).exists() else model


def find_train_run(path: str | Path) -> Path:
    """A train run dir, its model/ folder, or a file inside it -> the run dir (holding prompts + tokens)."""
    path = Path(path)
    for candidate in (path, path.parent):
        if (candidate / PROMPTS).is_file() and (candidate / TRAIN_TOKENS).is_file():
            return candidate
    raise HyperfitError(f"{path} is not a text train run (no {PROMPTS} and {TRAIN_TOKENS}); pass --train-run")


@dataclass
class GenerateSpec:
    model: str
    train_run: str | None = None  # default: the run the model came from (RUN/model -> RUN)
    gguf_file: str | None = None
    max_new_tokens: int = 256
    num_prompts: int | None = None
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    blocker: bool = False
    blocker_n: int = 5
    batch_size: int = 32
    device: str = "auto"
    name: str | None = None

    def resolved_name(self) -> str:
        return self.name or self.decoding.name + (f"-blocked{self.blocker_n}" if self.blocker else "")


def _check_same_tokenizer(text_model: TextModel, metadata: dict, source: Path) -> None:
    fingerprint = tokenizer_fingerprint(text_model.tokenizer)
    if metadata.get("tokenizer") not in (None, fingerprint) or \
            int(metadata.get("bos_id", text_model.bos_id)) != text_model.bos_id:
        raise HyperfitError(f"the prompts in {source} were tokenised with another tokenizer than "
                            f"{text_model.source}'s; use a model with the same vocabulary")


def generate_run(spec: GenerateSpec, out: str | Path = "runs") -> RunDir:
    """Continue the held-out contexts of a train run with one model and decoding; returns the run dir."""
    if spec.max_new_tokens < 1:
        raise HyperfitError("--max-new-tokens must be at least 1")
    if spec.batch_size < 1:
        raise HyperfitError("--batch-size must be at least 1")
    ensure_writable_dir(out)
    spec.model, spec.gguf_file = split_gguf_path(spec.model, spec.gguf_file)
    source = find_train_run(spec.train_run or spec.model)
    held_out, metadata = HeldOut.load(source / PROMPTS)
    held_out = held_out.first(spec.num_prompts)
    train_tokens = TokenSequences.load(source / TRAIN_TOKENS)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if spec.device == "auto" else spec.device)
    text_model = load_text_model(spec.model, spec.gguf_file, device=str(device))
    _check_same_tokenizer(text_model, metadata, source)
    prompts = text_model.with_bos(held_out.contexts)
    limit = model_max_positions(text_model.model)
    if limit is not None and prompts.shape[1] + spec.max_new_tokens - 1 > limit:
        raise HyperfitError(f"a {prompts.shape[1]}-token prompt plus {spec.max_new_tokens} new tokens needs "
                            f"{prompts.shape[1] + spec.max_new_tokens - 1} positions; {spec.model} has {limit}")
    citation = None
    if spec.blocker:
        from hyperfit_core.blocker import CitationBlocker

        citation = CitationBlocker(train_tokens.ids, n=spec.blocker_n)
    name = spec.resolved_name()
    run = RunDir.create(out, "text-generate")
    run.write_config({"model": _resolved(spec.model), "gguf_file": spec.gguf_file, "train_run": str(source.resolve()),
                      "name": name, "max_new_tokens": spec.max_new_tokens, "prompts": len(held_out),
                      "decoding": spec.decoding.to_dict(), "blocker": spec.blocker, "blocker_n": spec.blocker_n,
                      "tokenizer": text_model.describe()}, seed=spec.decoding.seed, command="text generate")
    click.echo(f"continuing {len(held_out)} contexts of {held_out.contexts.shape[1]} tokens by "
               f"{spec.max_new_tokens} ({name}) -> {run.path}", err=True)
    tokens = generate_tokens(text_model.model, prompts, spec.max_new_tokens, spec.decoding,
                             processors=[citation] if citation is not None else (), batch_size=spec.batch_size)
    generated = tokens[:, prompts.shape[1]:].contiguous()
    record = {"event": "generated", "name": name, "prompts": len(held_out), "new_tokens": spec.max_new_tokens}
    if citation is not None:
        record["blocker"] = citation.stats()
    run.log(record)
    save_generations(run, name, text_model, held_out, generated)
    return run


def save_generations(run: RunDir, name: str, text_model: TextModel, held_out: HeldOut,
                     generated: torch.Tensor) -> None:
    with atomic_path(run / f"{name}.{GENERATIONS}") as tmp:
        save_file({"generated": generated, "contexts": held_out.contexts.contiguous(),
                   "references": held_out.references.contiguous(), "starts": held_out.starts.contiguous(),
                   "bos_id": torch.tensor(text_model.bos_id)}, str(tmp))
    lines = [json.dumps({"index": i, "context": text_model.decode(held_out.contexts[i]),
                         "continuation": text_model.decode(generated[i]),
                         "reference": text_model.decode(held_out.references[i])}, ensure_ascii=False)
             for i in range(len(generated))]
    with atomic_path(run / f"{name}.generations.jsonl") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
