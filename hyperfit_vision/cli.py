"""`hyperfit vision ...`: train, complete, grid, benchmark, analyze, demo."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from hyperfit_core.cli_options import (DECODING_OPTION_NAMES, blocker_options, named_paths,
                                       decoding_config_from, decoding_options, pop_options, train_config_from,
                                       train_options)
from hyperfit_core.rundir import RunDir
from hyperfit_vision.complete import prefix_rows_for
from hyperfit_vision.demo import DEMO_EPOCHS, DEMO_LR, DEMO_TRAIN_IMAGES, run_demo
from hyperfit_vision.recipes import (DataSpec, TrainSpec, complete_run, grid_from_completions, load_train_tokens,
                                     make_blocker, train_run)

# Two image rows (64 pixels at 32 px): shorter n-grams of real held-out images already occur in the
# training images (a black background or flat sky repeats 5-grams everywhere). docs/blocker_n.md has the table.
IMAGE_BLOCKER_ROWS = 2

data_options = [
    click.option("--data", "source", default="cifar10", show_default=True,
                 help="cifar10, fashion-mnist, or a folder of PNG/JPEG images."),
    click.option("--data-root", default="data", show_default=True, help="Where torchvision datasets live."),
    click.option("--download", is_flag=True, help="Download the dataset (needs a network)."),
]


def with_data_options(func):
    for option in reversed(data_options):
        func = option(func)
    return func


@click.group()
def vision():
    """Hyperfit ImageGPT and complete images from their top rows."""


@vision.command()
@click.option("--model", default="openai/imagegpt-small", show_default=True, help="Hub id or local folder.")
@with_data_options
@click.option("--split", default="train", show_default=True)
@click.option("--num-train", type=int, default=2000, show_default=True, help="Random images to hyperfit on.")
@click.option("--palette", default=None, help="k x 3 colours (.npy/.json/.txt) when the model has no processor.")
@click.option("--seed", type=int, default=0, show_default=True)
@train_options
@click.option("--out", default="runs", show_default=True, help="Parent folder of the run dir.")
@click.option("--resume", default=None, type=click.Path(), help="Continue this run dir from its last checkpoint.")
def train(model, source, data_root, download, split, num_train, palette, seed, out, resume, **options):
    """Hyperfit an ImageGPT on random images (the paper: 2000 CIFAR-10 images, Adam 1e-6, batch 8, 20 epochs).

    Example: hyperfit vision train --model openai/imagegpt-large --data cifar10 --download
    """
    spec = TrainSpec(model=model, data=DataSpec(source, data_root, split, download),
                     train=train_config_from(options, seed), num_train=num_train, palette=palette)
    run = train_run(spec, out=out, resume=resume)
    click.echo(f"hyperfitted model: {run / 'model'}")
    click.echo(str(run.path))


@vision.command()
@click.option("--model", required=True, help="Hub id or local folder (e.g. RUN/model).")
@with_data_options
@click.option("--split", default="test", show_default=True)
@click.option("--num-images", type=int, default=16, show_default=True, help="Complete the first N images.")
@click.option("--prefix-fraction", type=float, default=0.25, show_default=True, help="Top share of rows kept.")
@click.option("--palette", default=None, help="Palette file when the model has no processor.")
@decoding_options
@blocker_options(None, "pixels", default_help=f"{IMAGE_BLOCKER_ROWS} image rows")
@click.option("--blocker-data", default=None,
              help="Train run dir (or token file) the blocker indexes; default: the run the model came from.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--name", default=None, help="Condition name (default: decoding name).")
@click.option("--out", default="runs", show_default=True)
def complete(model, source, data_root, download, split, num_images, prefix_fraction, palette, blocker, blocker_n,
             blocker_data, batch_size, device, name, out, **options):
    """Complete images from their top rows (default: greedy, 25% = 8 of 32 rows) and draw a grid."""
    from hyperfit_vision.model import load_imagegpt

    decoding = decoding_config_from(pop_options(options, DECODING_OPTION_NAMES))
    images = DataSpec(source, data_root, split, download).load()
    images = images.subset(torch.arange(min(num_images, len(images))))
    image_model, _ = load_imagegpt(model, palette)
    prefix_rows_for(prefix_fraction, image_model.side)  # check before a run dir exists
    blocker_n = blocker_n or IMAGE_BLOCKER_ROWS * image_model.side
    citation = make_blocker(load_train_tokens(blocker_data or Path(model)), blocker_n) if blocker else None
    run = RunDir.create(out, "vision-complete")
    name = name or decoding.name + ("-blocked" if blocker else "")
    run.write_config({"model": model, "data": source, "split": split, "num_images": len(images),
                      "prefix_fraction": prefix_fraction, "decoding": decoding.to_dict(), "blocker": blocker,
                      "blocker_n": blocker_n, "blocker_data": blocker_data}, seed=decoding.seed, command="vision complete")
    complete_run(image_model, images, prefix_fraction, decoding, run, name, blocker=citation,
                 batch_size=batch_size, device=device)
    grid = grid_from_completions({name: run / f"{name}.completions.safetensors"}, run / "grid.png")
    click.echo(f"grid: {grid}")
    click.echo(str(run.path))


@vision.command()
@click.argument("completions", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="PNG file to write.")
@click.option("--rows", type=int, default=16, show_default=True)
@click.option("--scale", type=int, default=4, show_default=True)
def grid(completions, out, rows, scale):
    """Put completion files (NAME.completions.safetensors, from `complete` runs) side by side in one PNG."""
    files = {}
    for item in completions:
        path = Path(item)
        if path.is_dir():
            found = sorted(path.glob("*.completions.safetensors"))
            files.update({f.name.split(".")[0]: f for f in found})
        else:
            files[path.name.split(".")[0]] = path
    click.echo(str(grid_from_completions(files, Path(out), rows=rows, scale=scale)))


@vision.command()
@click.option("--out", default="runs", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=DEMO_EPOCHS, show_default=True)
@click.option("--lr", type=float, default=DEMO_LR, show_default=True)
@click.option("--num-train", type=int, default=DEMO_TRAIN_IMAGES, show_default=True,
              help="How many of the shipped training images to hyperfit on.")
def demo(out, seed, epochs, lr, num_train):
    """The embedded default: hyperfit a small local model on shipped images and compare completions (offline)."""
    run = run_demo(out, seed, epochs=epochs, lr=lr, num_train=num_train)
    click.echo(str(run.path))


@vision.command()
@click.option("--base", required=True, help="Base model: hub id or folder.")
@click.option("--hyperfit", "hyperfitted", required=True, help="Hyperfitted model folder (RUN/model) or hub id.")
@click.option("--train-tokens", default=None,
              help="Hyperfitting tokens for the blocker and overlap (default: the run --hyperfit came from).")
@with_data_options
@click.option("--split", default="test", show_default=True)
@click.option("--num-images", type=int, default=10000, show_default=True, help="Complete the first N images.")
@click.option("--prefix-fraction", type=float, default=0.25, show_default=True)
@click.option("--blocker-n", type=int, default=None, help="Citation blocker n in pixels (default: two rows).")
@click.option("--fid/--no-fid", default=True, show_default=True, help="FID/KID with the Inception weights.")
@click.option("--fid-weights", default=None, help="Inception weights file (default: $HYPERFIT_INCEPTION, cache).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the top-p baseline.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--out", default="runs", show_default=True)
@click.option("--resume", default=None, type=click.Path(), help="Finish an interrupted benchmark run dir.")
def benchmark(base, hyperfitted, train_tokens, source, data_root, download, split, num_images, prefix_fraction,
              blocker_n, fid, fid_weights, seed, batch_size, device, out, resume):
    """Base greedy / base top-p / hyperfitted greedy / hyperfitted + blocker on the same held-out images:
    FID, KID, patch repetition (beside the real images' own), overlap with the hyperfitting data."""
    from hyperfit_vision.benchmark import paper_conditions, run_benchmark
    from hyperfit_vision.model import load_imagegpt

    images = DataSpec(source, data_root, split, download).load()
    images = images.subset(torch.arange(min(num_images, len(images))))
    models = {"base": load_imagegpt(base)[0], "hyperfit": load_imagegpt(hyperfitted)[0]}
    prefix_rows_for(prefix_fraction, models["base"].side)
    tokens = load_train_tokens(train_tokens or Path(hyperfitted))
    run = RunDir(resume) if resume else RunDir.create(out, "vision-benchmark")
    if not resume:
        run.write_config({"base": base, "hyperfit": hyperfitted, "data": source, "split": split,
                          "num_images": len(images), "prefix_fraction": prefix_fraction, "blocker_n": blocker_n,
                          "fid": fid}, seed=seed, command="vision benchmark")
    run_benchmark(models, images, paper_conditions(seed), run, train_tokens=tokens, prefix_fraction=prefix_fraction,
                  blocker_n=blocker_n, fid=fid, fid_weights=fid_weights, batch_size=batch_size, device=device)
    click.echo((run / "results.md").read_text(), err=True)
    click.echo(str(run.path))


@vision.command()
@click.option("--model", "models", multiple=True, required=True,
              help="Model to analyse (repeat: e.g. the base and the hyperfitted one). NAME=PATH names a column.")
@with_data_options
@click.option("--split", default="test", show_default=True)
@click.option("--num-images", type=int, default=500, show_default=True)
@click.option("--prefix-fraction", type=float, default=0.25, show_default=True,
              help="Predictions are scored on the rows after this prefix.")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--out", default="runs", show_default=True)
def analyze(models, source, data_root, download, split, num_images, prefix_fraction, batch_size, out):
    """Sharpened predictions on held-out images: per-position entropy, top-1/3/5 probability, top-1 accuracy,
    perplexity of the true pixels, and top-1 agreement between the first two models. JSON + PNG."""
    from hyperfit_core.analysis import prediction_stats, save_analysis, summarize, top1_agreement
    from hyperfit_vision.model import load_imagegpt
    from hyperfit_vision.tokens import images_to_tokens

    named = named_paths(models)
    loaded = {name: load_imagegpt(path)[0] for name, path in named.items()}
    first = next(iter(loaded.values()))
    images = DataSpec(source, data_root, split, download).load().resized(first.side)
    images = images.subset(torch.arange(min(num_images, len(images))))
    context = 1 + prefix_rows_for(prefix_fraction, first.side) * first.side
    ids = images_to_tokens(images.images, first.palette, sos=first.sos)
    run = RunDir.create(out, "vision-analyze")
    run.write_config({"models": named, "data": source, "split": split, "num_images": len(images),
                      "context_tokens": context}, command="vision analyze")
    summaries = {}
    for name, image_model in loaded.items():
        stats = prediction_stats(image_model.model, ids, context, batch_size=batch_size)
        summaries[name] = (stats, summarize(stats))
        run.log({"event": "analysis", "model": name, **{k: v for k, v in summaries[name][1].items()
                                                        if not isinstance(v, dict)}})
    agreement = None
    if len(loaded) >= 2:
        a, b = list(loaded)[:2]
        agreement = (a, b, top1_agreement(loaded[a].model, loaded[b].model, ids, context, batch_size=batch_size))
    click.echo(save_analysis(run.path, summaries, agreement), err=True)
    click.echo(str(run.path))
