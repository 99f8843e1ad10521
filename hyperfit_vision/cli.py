"""`hyperfit vision ...`: train, complete, grid, benchmark, evaluate, analyze, demo. Option names are the core's
(hyperfit_core.cli_options); only image-specific ones live here."""

from __future__ import annotations

from pathlib import Path

import click

from hyperfit_core.cli_options import (DECODING_OPTION_NAMES, POSITIVE, DecodingOptions, blocker_options,
                                       check_resume_options, cli_record, decode_batch_option, decode_precision_option,
                                       decoding_config_from, decoding_options, device_option, logit_bias_option,
                                       mechanism_options, named_paths, num_eval_option, out_option, pop_options,
                                       resume_option, stack, swap_blocks_options,
                                       train_config_from, train_options, train_run_option)
from hyperfit_core.formats import TRAIN_TOKENS
from hyperfit_core.options import click_options, declared, pop_declared
from hyperfit_core.recipe import TrainSpec
from hyperfit_core.train_config import TrainConfig
from hyperfit_vision.demo import DEMO_EPOCHS, DEMO_LR, DEMO_TRAIN_IMAGES
from hyperfit_vision.training import VisionTrainOptions

# Two image rows (64 pixels at 32 px): shorter n-grams of real held-out images already occur in the
# training images (a black background or flat sky repeats 5-grams everywhere). docs/blocker_n.md has the table.
IMAGE_BLOCKER_ROWS = 2


def image_data_options(default_split: str):
    return stack(
        click.option("--data", "source", default="cifar10", show_default=True,
                     help="cifar10, fashion-mnist, a folder of PNG/JPEG images, a Hugging Face dataset "
                          "(uoft-cs/cifar10, name:config:split), a save_to_disk folder or parquet file(s)."),
        click.option("--data-root", default="data", show_default=True,
                     help="Where the torchvision datasets (cifar10, fashion-mnist) live."),
        click.option("--split", default=default_split, show_default=True,
                     help="Dataset split (a split inside name:config:split wins)."),
        click.option("--download", is_flag=True, help="Download cifar10 / fashion-mnist first (needs a network)."),
        click.option("--image-column", default=None,
                     help="Image column of a Hugging Face dataset (default: its first image column)."),
        click.option("--crop", type=click.Choice(["center", "none"]), default="center", show_default=True,
                     help="Non-square images: centre-crop to a square, or refuse them."),
    )


DATA_OPTION_NAMES = ("source", "data_root", "split", "download", "image_column", "crop")


def _image_source(options: dict):
    from hyperfit_vision.data import ImageSource

    values = pop_options(options, DATA_OPTION_NAMES)
    return ImageSource(source=values["source"], root=values["data_root"], split=values["split"],
                       download=values["download"], image_column=values["image_column"], crop=values["crop"])


prefix_option = click.option("--prefix-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                             default=0.25, show_default=True,
                             help="Share of the image's rows kept from the top as the prompt (whole rows).")


@click.group()
def vision():
    """Hyperfit ImageGPT and complete images from their top rows."""


@vision.command()
@click.option("--model", default="openai/imagegpt-small", show_default=True,
              help="ImageGPT to hyperfit: hub id or local folder.")
@image_data_options("train")
@declared(TrainSpec, "num_train").click_option(help="Random images to hyperfit on.")
@click_options(VisionTrainOptions)
@train_options
@out_option
@resume_option
@click.pass_context
def train(ctx, model, num_train, data_seed, out, resume, **options):
    """Hyperfit an ImageGPT on random images (the paper: 2000 CIFAR-10 images, Adam 1e-6, batch 8, 20 epochs).

    Example: hyperfit vision train --model openai/imagegpt-large --data cifar10 --download
    """
    from hyperfit_core.recipe import read_spec
    from hyperfit_vision.training import train_images

    if resume:
        extend = check_resume_options(ctx, read_spec(resume)[1]["config"].get("cli"))
        run = train_images(None, resume=resume, extend=extend or None)
    else:
        source = _image_source(options)
        spec = TrainSpec(model=model, data=vars(source), train=train_config_from(options), num_train=num_train,
                         data_seed=data_seed, options=pop_declared(VisionTrainOptions, options))
        run = train_images(spec, out, cli=cli_record(ctx))
    if run.writer:  # under torchrun every process ran the recipe; one says where the run is
        click.echo(f"hyperfitted model: {run / 'model'}")
        click.echo(str(run.path))


def _load_model_and_images(model: str, palette, options: dict, num_eval, prefix_fraction: float):
    """The model first (a typo in its path is the cheapest thing to find), the prefix, then the images."""
    from hyperfit_vision.completion import prefix_rows_for
    from hyperfit_vision.model import load_imagegpt

    image_model, _ = load_imagegpt(model, palette)
    prefix_rows_for(prefix_fraction, image_model.side)
    return image_model, _image_source(options).load().first(num_eval)


@vision.command()
@click.option("--model", required=True, help="ImageGPT to complete with: hub id or local folder (e.g. RUN/model).")
@image_data_options("test")
@num_eval_option("images", 16)
@prefix_option
@click.option("--palette", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Palette file when the model has no image processor.")
@decoding_options
@blocker_options(None, "pixels", default_help=f"{IMAGE_BLOCKER_ROWS} image rows")
@logit_bias_option
@train_run_option
@decode_batch_option(None)
@click.option("--mode", type=click.Choice(["auto", "graph", "slice"]), default="auto", show_default=True,
              help="Decoding step: graph = CUDA graphs (CUDA only), slice = attend over the filled cache; "
                   "auto = graph on CUDA, slice on CPU.")
@decode_precision_option
@device_option
@click.option("--name", default=None, help="Condition name (default: the decoding's name, plus -blocked).")
@out_option
def complete(model, num_eval, prefix_fraction, palette, blocker, blocker_n, logit_bias, train_run, batch_size, mode,
             precision, device, name, out, **options):
    """Complete held-out images from their top rows (default: greedy, 25% = 8 of 32 rows) and draw a grid."""
    from hyperfit_core import distributed_eval
    from hyperfit_core.blocker import CitationBlocker
    from hyperfit_core.ranks import LogitBias, load_logit_bias, output_classes
    from hyperfit_core.recipe import load_train_tokens
    from hyperfit_core.formats import COMPLETIONS, condition_file
    from hyperfit_vision.completion import complete_run
    from hyperfit_vision.grid import grid_from_completions

    decoding = decoding_config_from(pop_options(options, DECODING_OPTION_NAMES))
    distributed_eval.start(device)  # under torchrun: join the group before the model is loaded
    image_model, images = _load_model_and_images(model, palette, options, num_eval, prefix_fraction)
    blocker_n = blocker_n or IMAGE_BLOCKER_ROWS * image_model.side
    citation = CitationBlocker(load_train_tokens(train_run or Path(model)).ids, n=blocker_n) if blocker else None
    bias = LogitBias(load_logit_bias(logit_bias, output_classes(image_model.model))) if logit_bias else None
    run = distributed_eval.shared_run(out, "vision-complete")
    name = name or decoding.name + ("-logit-bias" if logit_bias else "") + ("-blocked" if blocker else "")
    run.write_config({**distributed_eval.describe(), "model": model, "data": images.names[0].rsplit("/", 1)[0],
                      "num_eval": len(images),
                      "prefix_fraction": prefix_fraction, "decoding": decoding.to_dict(), "blocker": blocker,
                      "blocker_n": blocker_n, "logit_bias": logit_bias, "train_run": train_run, "name": name},
                     seed=decoding.seed,
                     command="vision complete")
    complete_run(image_model, images, prefix_fraction, decoding, run, name, blocker=citation, logit_bias=bias,
                 batch_size=batch_size, device=device, mode=mode, precision=precision)
    if not run.writer:
        return
    grid = grid_from_completions({name: condition_file(run.path, name, COMPLETIONS)}, run / "grid.png")
    click.echo(f"grid: {grid}")
    click.echo(str(run.path))


@vision.command()
@click.argument("completions", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--png", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@click.option("--rows", type=POSITIVE, default=16, show_default=True, help="Images (grid rows) to show.")
@click.option("--scale", type=POSITIVE, default=4, show_default=True, help="Screen pixels per image pixel.")
def grid(completions, png, rows, scale):
    """Put completion files (NAME.completions.safetensors, `complete` run dirs or the --out folder of one) side by
    side in one PNG."""
    from hyperfit_core.formats import COMPLETIONS, condition_files_of
    from hyperfit_core.plots import png_target
    from hyperfit_vision.grid import grid_from_completions

    png_target(png)
    files = {}
    for item in completions:
        path = Path(item)
        # NAME is all before .completions.safetensors: sample-T1-p0.9 and sample-T1-p0.95 are two columns; a file
        # named otherwise is shown under its stem
        is_named = path.is_dir() or path.name.endswith(f".{COMPLETIONS}")
        files.update(condition_files_of(path, COMPLETIONS) if is_named else {path.stem: path})
    click.echo(str(grid_from_completions(files, Path(png), rows=rows, scale=scale)))


@vision.command()
@out_option
@declared(TrainConfig, "seed").click_option(help="Seed of the hyperfitting run and the top-p baseline.")
@declared(TrainConfig, "epochs").click_option(default=DEMO_EPOCHS)
@declared(TrainConfig, "lr").click_option(default=DEMO_LR)
@declared(TrainSpec, "num_train").click_option(default=DEMO_TRAIN_IMAGES,
                                               help="How many of the shipped training images to hyperfit on.")
@device_option
def demo(out, seed, epochs, lr, num_train, device):
    """The embedded default: hyperfit a small local model on shipped images and compare completions (offline)."""
    from hyperfit_vision.demo import run_demo

    run = run_demo(out, seed, epochs=epochs, lr=lr, num_train=num_train, device=device)
    click.echo(str(run.path))


@vision.command()
@click.option("--base", required=True, help="Base model: hub id or folder.")
@click.option("--hyperfit", "hyperfitted", required=True, help="Hyperfitted model folder (RUN/model) or hub id.")
@train_run_option
@image_data_options("test")
@num_eval_option("images", "all")
@prefix_option
@click.option("--blocker-n", type=POSITIVE, default=None, help="Citation blocker n in pixels (default: two rows).")
@click.option("--fid/--no-fid", default=True, show_default=True, help="FID/KID with the Inception weights.")
@click.option("--fid-weights", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Inception weights file (default: $HYPERFIT_INCEPTION, then ~/.cache/hyperfit).")
@declared(DecodingOptions, "decode_seed").click_option(help="Seed of the top-p baseline's sampler.")
@decode_batch_option(None)
@device_option
@out_option
@click.option("--resume", default=None, type=click.Path(exists=True, file_okay=False),
              help="Finish an interrupted benchmark run dir (finished conditions are kept).")
def benchmark(base, hyperfitted, train_run, num_eval, prefix_fraction, blocker_n, fid, fid_weights, decode_seed,
              batch_size, device, out, resume, **options):
    """Base greedy / base top-p / hyperfitted greedy / hyperfitted + blocker on the same held-out images:
    FID, KID, patch repetition (beside the real images' own), overlap with the hyperfitting data."""
    from hyperfit_core import distributed_eval
    from hyperfit_core.recipe import load_train_tokens
    from hyperfit_core.rundir import RunDir
    from hyperfit_vision.benchmark import paper_conditions, run_benchmark
    from hyperfit_vision.scoring import ImageFid
    from hyperfit_vision.completion import prefix_rows_for
    from hyperfit_vision.model import load_imagegpt

    distributed_eval.start(device)  # under torchrun: join the group before the models are loaded
    scorer = ImageFid(fid_weights, device=device) if fid else None  # missing weights: refused before any work
    models = {"base": load_imagegpt(base)[0], "hyperfit": load_imagegpt(hyperfitted)[0]}
    images = _image_source(options).load().first(num_eval)
    prefix_rows_for(prefix_fraction, models["base"].side)
    tokens = load_train_tokens(train_run or Path(hyperfitted))
    run = RunDir(resume) if resume else distributed_eval.shared_run(out, "vision-benchmark")
    if not resume:
        run.write_config({**distributed_eval.describe(), "base": base, "hyperfit": hyperfitted,
                          "num_eval": len(images),
                          "prefix_fraction": prefix_fraction, "blocker_n": blocker_n, "fid": fid,
                          "train_run": train_run}, seed=decode_seed, command="vision benchmark")
    run_benchmark(models, images, paper_conditions(decode_seed), run, train_tokens=tokens,
                  prefix_fraction=prefix_fraction, blocker_n=blocker_n, fid=fid, fid_weights=fid_weights,
                  batch_size=batch_size, device=device, scorer=scorer)
    if run.writer:
        click.echo((run / "results.md").read_text(), err=True)
        click.echo(str(run.path))


@vision.command()
@click.argument("completions", nargs=-1, required=True)
@click.option("--train-run", default=None, type=click.Path(exists=True),
              help=f"Train run (dir, its model/ folder or {TRAIN_TOKENS}) whose hyperfitting data the overlap is "
                   "measured against. Default: the data the runs' models were hyperfitted on.")
@click.option("--fid/--no-fid", default=True, show_default=True, help="FID/KID with the Inception weights.")
@click.option("--fid-weights", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Inception weights file (default: $HYPERFIT_INCEPTION, then ~/.cache/hyperfit).")
@device_option
@out_option
def evaluate(completions, train_run, fid, fid_weights, device, out):
    """Score `complete` runs (or NAME.completions.safetensors files; NAME=PATH renames a one-condition path) side by
    side, as `benchmark` scores its own: FID, KID, patch repetition beside the real images' own, overlap with the
    hyperfitting data. Every condition must complete the same images from the same prefix."""
    from hyperfit_core import distributed_eval
    from hyperfit_core.recipe import load_train_tokens
    from hyperfit_vision.benchmark import score_conditions
    from hyperfit_vision.evaluate import collect_conditions, copy_into, default_train_tokens
    from hyperfit_vision.scoring import ImageFid

    distributed_eval.start(device)
    files = collect_conditions(list(completions))
    tokens = load_train_tokens(train_run) if train_run else default_train_tokens(files)
    if tokens is None:
        click.echo("overlap with the hyperfitting data not scored: no run's model came from a train run "
                   "(pass --train-run)", err=True)
    scorer = ImageFid(fid_weights, device=device) if fid else None  # missing weights: refused before the run dir
    run = distributed_eval.shared_run(out, "vision-evaluate")
    run.write_config({**distributed_eval.describe(), "completions": {k: str(v) for k, v in files.items()},
                      "train_run": train_run, "overlap": tokens is not None, "fid": fid}, command="vision evaluate")
    score_conditions(copy_into(run, files), run, tokens, scorer)
    if run.writer:
        click.echo((run / "results.md").read_text(), err=True)
        click.echo(str(run.path))


@vision.command()
@click.option("--model", "models", multiple=True, required=True,
              help="Model to analyse (repeat: e.g. the base and the hyperfitted one). NAME=PATH names a column.")
@image_data_options("test")
@num_eval_option("images", 500)
@prefix_option
@decode_batch_option(16)
@device_option
@mechanism_options
@out_option
def analyze(models, num_eval, prefix_fraction, batch_size, device, out, match_entropy, ranks_run, write_logit_bias,
            layers, **options):
    """Sharpened predictions on held-out images: per-position entropy, top-1/3/5 probability, top-1 accuracy,
    perplexity of the true pixels, and top-1 agreement between the first two models. JSON + PNG. And the
    follow-up's controls (docs/mechanism.md), the first model being the base, the second the hyperfitted one."""
    from hyperfit_core import distributed_eval
    from hyperfit_core.analysis import run_analysis
    from hyperfit_core.mechanism import MechanismOptions
    from hyperfit_vision.completion import prefix_rows_for
    from hyperfit_vision.model import load_imagegpt
    from hyperfit_vision.training import image_sequences

    from hyperfit_vision.completion import completion_sequences

    distributed_eval.start(device)  # under torchrun: join the group before the models are loaded
    named = named_paths(models)
    controls = MechanismOptions(match_entropy=match_entropy, write_logit_bias=write_logit_bias, layers=layers,
                                ranks_source=ranks_run)
    controls.check(named)
    loaded = {name: load_imagegpt(path)[0] for name, path in named.items()}
    first = next(iter(loaded.values()))
    if ranks_run:
        controls.ranks = completion_sequences(ranks_run, first.sos)
    images = _image_source(options).load().first(num_eval)
    context = 1 + prefix_rows_for(prefix_fraction, first.side) * first.side
    ids = image_sequences(images, first).ids
    run_analysis({name: m.model for name, m in loaded.items()}, ids, context, out, "vision",
                 {"models": named, "num_eval": len(images), "context_tokens": context},
                 batch_size=batch_size, device=device, mechanism=controls if controls.any() else None)

@vision.command("swap-blocks")
@swap_blocks_options("ImageGPT")
def swap_blocks(base, donor, last, out):
    """The base model with only its last K blocks taken from the donor (the hyperfitted model), as a model
    folder to complete with like any other:
    hyperfit vision swap-blocks --base B --donor RUN/model --last 1 --out DIR."""
    from hyperfit_core.layers import write_swapped_model
    from hyperfit_vision.model import load_imagegpt

    base_model = load_imagegpt(base, fused_attention=False)[0]
    donor_model = load_imagegpt(donor, fused_attention=False)[0]
    swapped = write_swapped_model(base_model.model, donor_model.model, last, out, base_model.save,
                                  {"base": base, "donor": donor})
    click.echo(f"blocks {swapped} from {donor}", err=True)
    click.echo(str(out))


def _imagegpt_config(model: str):
    from hyperfit_vision.model import load_config

    return load_config(model)


def _plan():
    from hyperfit_core.plan import plan_command

    return plan_command(_imagegpt_config, default_seq=None)  # ImageGPT's build: hyperfit_vision/__init__.py


vision.add_command(_plan(), "plan")
