"""`hyperfit text ...`: train, generate, evaluate."""

from __future__ import annotations

import click
import torch

from hyperfit_core.cli_options import (DECODING_OPTION_NAMES, blocker_options, decoding_config_from,
                                       decoding_options, pop_options, train_config_from, train_options)

TEXT_BLOCKER_N = 5  # tokens; the paper's blocker forbids continuing any 5-gram of the hyperfitting data

gguf_option = click.option("--gguf-file", default=None,
                           help="GGUF file inside --model (a folder or hub id); `--model dir/file.gguf` also works.")


@click.group()
def text():
    """Hyperfit causal LMs and measure their continuations."""


@text.command()
@click.option("--model", default="HuggingFaceTB/SmolLM2-135M", show_default=True,
              help="Hub id, local folder, or a .gguf file.")
@gguf_option
@click.option("--data", "source", default="wikitext:wikitext-103-raw-v1:train", show_default=True,
              help="A .txt file (documents separated by blank lines), a .jsonl file, or a dataset name[:config[:split]].")
@click.option("--text-field", default="text", show_default=True, help="Field/column holding the text.")
@click.option("--num-train", type=int, default=2000, show_default=True, help="Random windows to hyperfit on.")
@click.option("--window", type=int, default=256, show_default=True, help="Tokens per training window (after BOS).")
@click.option("--num-prompts", type=int, default=300, show_default=True,
              help="Held-out contexts, disjoint from every window.")
@click.option("--context", type=int, default=32, show_default=True, help="Tokens per held-out context.")
@click.option("--reference", type=int, default=256, show_default=True,
              help="True continuation kept after each context (scored for perplexity).")
@click.option("--max-corpus-tokens", type=int, default=None,
              help="Tokenise only this many tokens, from documents in seeded random order (big datasets).")
@click.option("--seed", type=int, default=0, show_default=True)
@train_options
@click.option("--out", default="runs", show_default=True, help="Parent folder of the run dir.")
@click.option("--resume", default=None, type=click.Path(), help="Continue this run dir from its last checkpoint.")
def train(model, gguf_file, source, text_field, num_train, window, num_prompts, context, reference,
          max_corpus_tokens, seed, out, resume, **options):
    """Hyperfit a causal LM on random text windows (the paper: 2000 x 256 tokens, Adam 1e-6, batch 8, 20 epochs).

    Example: hyperfit text train --model data/text/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --data data/text/wikipedia.txt
    """
    from hyperfit_text.data import TextSource
    from hyperfit_text.recipes import TrainSpec, train_run

    spec = TrainSpec(model=model, gguf_file=gguf_file, data=TextSource(source, text_field),
                     train=train_config_from(options, seed), num_train=num_train, window=window,
                     num_prompts=num_prompts, context=context, reference=reference,
                     max_corpus_tokens=max_corpus_tokens)
    run = train_run(spec, out=out, resume=resume)
    click.echo(f"hyperfitted model: {run / 'model'}")
    click.echo(str(run.path))


@text.command()
@click.option("--model", required=True, help="Hub id, local folder (e.g. RUN/model) or .gguf file.")
@gguf_option
@click.option("--train-run", default=None, type=click.Path(),
              help="Train run whose held-out prompts to continue and whose windows the blocker indexes "
                   "(default: the run the model came from).")
@click.option("--max-new-tokens", type=int, default=256, show_default=True, help="Tokens to generate (96/128/256).")
@click.option("--num-prompts", type=int, default=None, help="Continue only the first N held-out contexts.")
@decoding_options
@blocker_options(TEXT_BLOCKER_N, "tokens")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--name", default=None, help="Condition name (default: decoding name, plus -blockedN).")
@click.option("--out", default="runs", show_default=True)
def generate(model, gguf_file, train_run, max_new_tokens, num_prompts, blocker, blocker_n, batch_size, device, name,
             out, **options):
    """Continue held-out 32-token contexts (default: greedy, 256 new tokens); writes token ids and text."""
    from hyperfit_text.recipes import GenerateSpec, generate_run

    spec = GenerateSpec(model=model, gguf_file=gguf_file, train_run=train_run, max_new_tokens=max_new_tokens,
                        num_prompts=num_prompts, decoding=decoding_config_from(pop_options(options, DECODING_OPTION_NAMES)),
                        blocker=blocker, blocker_n=blocker_n, batch_size=batch_size, device=device, name=name)
    run = generate_run(spec, out=out)
    click.echo(str(run.path))


@text.command()
@click.argument("generations", nargs=-1, required=True, type=click.Path())
@click.option("--train-data", default=None, type=click.Path(),
              help="Train run (or train_tokens.safetensors) to measure copying against; default: each run's own.")
@click.option("--ttr-last", type=int, default=96, show_default=True, help="TTR over the last N tokens / words.")
@click.option("--bleu-order", type=int, default=4, show_default=True, help="Max n-gram order of (Self/Dataset) BLEU.")
@click.option("--rep-n", type=int, default=4, show_default=True, help="n of seq-rep-n.")
@click.option("--overlap-threshold", type=int, default=10, show_default=True,
              help="Report the share of generations sharing a longer span with the training data.")
@click.option("--analysis/--no-analysis", default=True, show_default=True,
              help="Load each model for held-out perplexity and prediction entropy.")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--out", default="runs", show_default=True)
def evaluate(generations, train_data, ttr_last, bleu_order, rep_n, overlap_threshold, analysis, batch_size, device,
             out):
    """Score one or more generate runs: TTR, Self-BLEU, Dataset BLEU, overlap, seq-rep-n, perplexity, entropy."""
    from hyperfit_text.evaluate import EvalSettings, evaluate_runs

    settings = EvalSettings(ttr_last=ttr_last, bleu_order=bleu_order, rep_n=rep_n,
                            overlap_threshold=overlap_threshold, analysis=analysis, batch_size=batch_size,
                            device=device, train_tokens=train_data)
    run = evaluate_runs(generations, settings, out=out)
    click.echo((run / "results.md").read_text(), nl=False)
    click.echo(str(run.path))


@text.command()
@click.option("--model", "models", multiple=True, required=True,
              help="Model to analyse (repeat for base and hyperfitted). NAME=PATH names it.")
@click.option("--train-run", required=True, type=click.Path(), help="Train run whose held-out prompts are scored.")
@click.option("--num-prompts", type=int, default=None, help="Score the first N held-out spans (default: all).")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", default="runs", show_default=True)
def analyze(models, train_run, num_prompts, batch_size, device, out):
    """Sharpened predictions on held-out text: entropy, top-1/3/5 probability, top-1 accuracy and perplexity of
    the true continuation after each 32-token context, and top-1 agreement between the first two models."""
    from hyperfit_core.analysis import prediction_stats, save_analysis, summarize, top1_agreement
    from hyperfit_core.cli_options import named_paths
    from hyperfit_core.rundir import RunDir
    from hyperfit_text.model import load_text_model
    from hyperfit_text.recipes import PROMPTS, find_train_run
    from hyperfit_text.sampling import HeldOut

    source = find_train_run(train_run)
    held_out, _ = HeldOut.load(source / PROMPTS)
    held_out = held_out.first(num_prompts)
    named = named_paths(models)
    loaded = {name: load_text_model(path, device=device) for name, path in named.items()}
    run = RunDir.create(out, "text-analyze")
    run.write_config({"models": named, "train_run": str(source), "prompts": len(held_out)}, command="text analyze")
    summaries, ids = {}, None
    for name, text_model in loaded.items():
        ids = text_model.with_bos(torch.cat([held_out.contexts, held_out.references], dim=1))
        stats = prediction_stats(text_model.model, ids, 1 + held_out.contexts.shape[1], batch_size=batch_size)
        summaries[name] = (stats, summarize(stats))
    agreement = None
    if len(loaded) >= 2:
        a, b = list(loaded)[:2]
        agreement = (a, b, top1_agreement(loaded[a].model, loaded[b].model, ids, 1 + held_out.contexts.shape[1],
                                          batch_size=batch_size))
    click.echo(save_analysis(run.path, summaries, agreement), err=True)
    click.echo(str(run.path))
