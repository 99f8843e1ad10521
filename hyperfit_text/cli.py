"""`hyperfit text ...`: train, generate, evaluate, analyze. Option names are the core's
(hyperfit_core.cli_options); only text-specific ones live here."""

from __future__ import annotations

import click

from hyperfit_core.cli_options import (DECODING_OPTION_NAMES, POSITIVE, blocker_options, check_resume_options,
                                       cli_record, decode_batch_option, decode_precision_option,
                                       decoding_config_from, decoding_options, device_option, logit_bias_option,
                                       mechanism_options, named_paths, num_eval_option, out_option, pop_options,
                                       resume_option, stack, swap_blocks_options, train_config_from,
                                       train_options, train_run_option)
from hyperfit_core.device_map import DEVICE_MAPS
from hyperfit_core.options import click_options, declared, pop_declared
from hyperfit_core.recipe import TrainSpec
from hyperfit_text.training import TextTrainOptions

TEXT_BLOCKER_N = 5  # tokens; the paper's blocker forbids continuing any 5-gram of the hyperfitting data

# generate reads the same GGUF file and cuts the same context length as train: one declaration each
gguf_option = declared(TextTrainOptions, "gguf_file").click_option()
context_option = declared(TextTrainOptions, "context").click_option()


# one model split over the visible GPUs / CPU / disk (transformers' big-model loading): the text commands that load
device_map_option = stack(
    click.option("--device-map", type=click.Choice(DEVICE_MAPS), default=None,
                 help="Split the model over the visible GPUs, then CPU, then disk (transformers' device_map), for "
                      "a model larger than one device; one process (not under torchrun)."),
    click.option("--max-memory", default=None,
                 help="Per-device limit for --device-map, e.g. 0=70GiB,1=70GiB,cpu=200GiB (more goes to disk)."))


@click.group()
def text():
    """Hyperfit causal LMs and measure their continuations."""


@text.command()
@click.option("--model", default="HuggingFaceTB/SmolLM2-135M", show_default=True,
              help="Causal LM to hyperfit: hub id, local folder, or a .gguf file.")
@click.option("--data", "source", default="wikitext:wikitext-103-raw-v1:train", show_default=True,
              help="A .txt file (documents separated by blank lines), a .jsonl file, or a dataset name[:config[:split]].")
@click.option("--text-field", default="text", show_default=True,
              help="Field (.jsonl) or column (dataset) holding the text.")
@declared(TrainSpec, "num_train").click_option(help="Random windows to hyperfit on.")
@click_options(TextTrainOptions)
@train_options
@out_option
@resume_option
@click.pass_context
def train(ctx, model, source, text_field, num_train, data_seed, out, resume, **options):
    """Hyperfit a causal LM on random text windows (the paper: 2000 x 256 tokens, Adam 1e-6, batch 8, 20 epochs).

    Example: hyperfit text train --model data/text/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --data data/text/wikipedia.txt
    """
    from hyperfit_core.recipe import read_spec
    from hyperfit_text.data import TextSource
    from hyperfit_text.training import train_text

    if resume:
        extend = check_resume_options(ctx, read_spec(resume)[1]["config"].get("cli"))
        run = train_text(None, resume=resume, extend=extend or None)
    else:
        spec = TrainSpec(model=model, data=vars(TextSource(source, text_field)), train=train_config_from(options),
                         num_train=num_train, data_seed=data_seed, options=pop_declared(TextTrainOptions, options))
        run = train_text(spec, out, cli=cli_record(ctx))
    if run.writer:  # under torchrun every process ran the recipe; one says where the run is
        click.echo(f"hyperfitted model: {run / 'model'}")
        click.echo(str(run.path))


@text.command()
@click.option("--model", required=True, help="Causal LM to continue with: hub id, local folder (e.g. RUN/model) or .gguf.")
@gguf_option
@train_run_option
@click.option("--prompts", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Your prompts: one per line (.txt) or JSON lines (.jsonl, field --prompt-field), each cut to "
                   "--context tokens (default: the train run's held-out contexts).")
@click.option("--prompts-from", default=None,
              help="Draw held-out contexts from this corpus (.txt/.jsonl/dataset), disjoint from the model's "
                   "training windows: evaluate a model hyperfitted on one corpus on another.")
@click.option("--prompt-field", default="prompt", show_default=True, help="Field of a .jsonl --prompts file.")
@context_option
@click.option("--prompt-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed choosing the --prompts-from spans.")
@click.option("--max-new-tokens", type=POSITIVE, default=256, show_default=True,
              help="Tokens to generate per context (the paper: 256).")
@num_eval_option("contexts", "all")
@decoding_options
@blocker_options(TEXT_BLOCKER_N, "tokens")
@logit_bias_option
@decode_batch_option(32)
@decode_precision_option
@device_option
@device_map_option
@click.option("--name", default=None, help="Condition name (default: the decoding's name, plus -blockedN).")
@out_option
def generate(model, gguf_file, train_run, prompts, prompts_from, prompt_field, context, prompt_seed, max_new_tokens,
             num_eval, blocker, blocker_n, logit_bias, batch_size, precision, device, device_map, max_memory, name,
             out, **options):
    """Continue held-out contexts (default: the train run's 32-token contexts, greedy, 256 new tokens); writes
    token ids and text. The citation blocker always indexes the model's own hyperfitting windows."""
    from hyperfit_text.generation import GenerateSpec, generate_run

    spec = GenerateSpec(model=model, gguf_file=gguf_file, train_run=train_run, max_new_tokens=max_new_tokens,
                        num_eval=num_eval, decoding=decoding_config_from(pop_options(options, DECODING_OPTION_NAMES)),
                        blocker=blocker, blocker_n=blocker_n, batch_size=batch_size, device=device, name=name,
                        prompts=prompts, prompts_from=prompts_from, prompt_field=prompt_field, context=context,
                        prompt_seed=prompt_seed, precision=precision, logit_bias=logit_bias, device_map=device_map,
                        max_memory=max_memory)
    run = generate_run(spec, out=out)
    if run.writer:  # under torchrun every process decoded a part; one says where the run is
        click.echo(str(run.path))


@text.command()
@click.argument("generations", nargs=-1, required=True, type=click.Path(exists=True))
@train_run_option
@click.option("--ttr-last", type=POSITIVE, default=96, show_default=True,
              help="TTR over the last N generated tokens / words (the paper: 96 of 256).")
@click.option("--lengths", default="32,64,96,128,192,256", show_default=True,
              help="Comma-separated continuation lengths (tokens) of the length curves.")
@click.option("--bleu-order", type=POSITIVE, default=4, show_default=True, help="Max n-gram order of (Self/Dataset) BLEU.")
@click.option("--rep-n", type=POSITIVE, default=4, show_default=True, help="n of seq-rep-n.")
@click.option("--overlap-threshold", type=POSITIVE, default=10, show_default=True,
              help="Report the share of continuations sharing a span longer than this (tokens) with the training data.")
@click.option("--analysis/--no-analysis", default=True, show_default=True,
              help="Load each model for held-out perplexity and prediction entropy.")
@click.option("--quality-model", default=None,
              help="Scoring model of MAUVE and fluency (a folder, a .gguf file, or a hub id with a network); 'none' "
                   "leaves them out. Default: the gemma-3-270m GGUF under data/text/gemma3 when it is there "
                   "(docs/text.md), else they are left out and the results say why.")
@click.option("--quality-cache", default=None, type=click.Path(file_okay=False),
              help="Folder of the per-text MAUVE features and perplexities (default: OUT/text-quality-cache).")
@click.option("--model", default=None,
              help="For a .jsonl of continuations made elsewhere (vLLM, TGI; docs/scale.md): the model whose "
                   "tokenizer re-encodes its texts and which perplexity loads.")
@decode_batch_option(16)
@device_option
@device_map_option
@out_option
def evaluate(generations, train_run, ttr_last, lengths, bleu_order, rep_n, overlap_threshold, analysis, quality_model,
             quality_cache, model, batch_size, device, device_map, max_memory, out):
    """Score one or more generate runs (or .jsonl files of continuations made elsewhere, with --model): TTR,
    Self-BLEU, Dataset BLEU, overlap, seq-rep-n, MAUVE and fluency under a scoring model, perplexity, entropy, and
    length curves of TTR / seq-rep / Self-BLEU (JSON + length_curves.png, quality.png)."""
    from hyperfit_core.errors import HyperfitError
    from hyperfit_text.evaluate import EvalSettings, evaluate_runs
    from hyperfit_text.quality import choose_quality_model

    try:
        points = tuple(int(x) for x in lengths.split(",") if x.strip())
    except ValueError:
        raise HyperfitError(f"--lengths {lengths!r} is not a comma-separated list of token counts") from None
    if not points or min(points) < 1:
        raise HyperfitError(f"--lengths {lengths!r} must list positive token counts")
    scorer, skipped = choose_quality_model(quality_model)
    settings = EvalSettings(ttr_last=ttr_last, bleu_order=bleu_order, rep_n=rep_n, lengths=points,
                            overlap_threshold=overlap_threshold, analysis=analysis, batch_size=batch_size,
                            device=device, train_run=train_run, quality_model=scorer, quality_skipped=skipped,
                            quality_cache=quality_cache, model=model, device_map=device_map, max_memory=max_memory)
    run = evaluate_runs(generations, settings, out=out)
    if not run.writer:
        return
    if skipped and quality_model is None:  # after the run: a bad input stays one error line
        click.echo(f"warning: MAUVE and fluency not computed: {skipped}", err=True)
    click.echo((run / "results.md").read_text(), nl=False)
    click.echo(str(run.path))


@text.command()
@click.option("--model", "models", multiple=True, required=True,
              help="Model to analyse (repeat for base and hyperfitted). NAME=PATH names it.")
@click.option("--train-run", required=True, type=click.Path(exists=True),
              help="Text train run whose held-out contexts and references are scored.")
@num_eval_option("contexts", "all")
@decode_batch_option(8)
@device_option
@device_map_option
@mechanism_options
@out_option
def analyze(models, train_run, num_eval, batch_size, device, device_map, max_memory, out, **mechanism):
    """Sharpened predictions on held-out text: entropy, top-1/3/5 probability, top-1 accuracy and perplexity of
    the true continuation after each context, and top-1 agreement between the first two models; and the
    follow-up's controls (docs/mechanism.md), the first model being the base, the second the hyperfitted one."""
    import torch

    from hyperfit_core import distributed_eval
    from hyperfit_core.analysis import run_analysis
    from hyperfit_core.device_map import load_kwargs
    from hyperfit_core.mechanism import MechanismOptions
    from hyperfit_text.generation import generation_sequences
    from hyperfit_text.model import load_text_model
    from hyperfit_text.splits import HeldOut
    from hyperfit_text.training import PROMPTS, find_text_train_run

    distributed_eval.start(device)  # under torchrun: join the group before the models are loaded
    source = find_text_train_run(train_run)
    held_out, _ = HeldOut.load(source / PROMPTS)
    held_out = held_out.first(num_eval)
    named = named_paths(models)
    ranks_run = mechanism.pop("ranks_run")
    options = MechanismOptions(**mechanism, ranks=generation_sequences(ranks_run) if ranks_run else None,
                               ranks_source=ranks_run)
    options.check(named)
    placement = load_kwargs(device_map, max_memory, device)
    loaded = {name: load_text_model(path, placement=placement) for name, path in named.items()}
    first = next(iter(loaded.values()))
    ids = first.with_bos(torch.cat([held_out.contexts, held_out.references], dim=1))
    run_analysis({name: m.model for name, m in loaded.items()}, ids, 1 + held_out.contexts.shape[1], out, "text",
                 {"models": named, "train_run": str(source), "prompts": len(held_out)},
                 batch_size=batch_size, device=device, mechanism=options if options.any() else None)


@text.command("swap-blocks")
@swap_blocks_options("causal LM")
def swap_blocks(base, donor, last, out):
    """The base model with only its last K blocks taken from the donor (the hyperfitted model), as a model
    folder to decode like any other: hyperfit text swap-blocks --base B --donor RUN/model --last 1 --out DIR."""
    from hyperfit_core.layers import write_swapped_model
    from hyperfit_text.model import load_text_model

    base_model, donor_model = load_text_model(base), load_text_model(donor)

    def save(folder):
        base_model.model.save_pretrained(folder)
        base_model.tokenizer.save_pretrained(folder)

    swapped = write_swapped_model(base_model.model, donor_model.model, last, out, save,
                                  {"base": base, "donor": donor})
    click.echo(f"blocks {swapped} from {donor}", err=True)
    click.echo(str(out))


def _plan():
    from hyperfit_core.plan import load_config, plan_command

    return plan_command(load_config)


text.add_command(_plan(), "plan")
