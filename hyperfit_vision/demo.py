"""The embedded default (README command 1): the whole vision slice offline, on shipped images, in minutes."""

from __future__ import annotations

import time
from pathlib import Path

import click
import torch

from hyperfit_core.decoding import DecodingConfig
from hyperfit_core.errors import HyperfitError
from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences
from hyperfit_core.train import TrainConfig, hyperfit
from hyperfit_vision.data import load_image_folder
from hyperfit_vision.model import build_imagegpt
from hyperfit_vision.palette import kmeans_palette
from hyperfit_vision.recipes import TRAIN_TOKENS, complete_run, grid_from_completions, make_blocker
from hyperfit_vision.tokens import images_to_tokens

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CIFAR_IMAGES = ASSETS / "cifar10-test-first20"
REAL_COMMAND = ("hyperfit vision train --model openai/imagegpt-large --data cifar10 --download\n"
                "  hyperfit vision complete --model RUN/model --data cifar10 --split test --num-images 1000\n"
                "  hyperfit vision complete --model RUN/model --data cifar10 --split test --blocker")


def run_demo(out: str | Path = "runs", seed: int = 0, n_train: int = 16) -> RunDir:
    started = time.time()
    if not CIFAR_IMAGES.is_dir():
        raise HyperfitError(f"the demo images are missing: {CIFAR_IMAGES} (run from a full checkout)")
    images = load_image_folder(CIFAR_IMAGES)
    train_images, held_out = images.subset(torch.arange(n_train)), images.subset(torch.arange(n_train, len(images)))
    run = RunDir.create(out, "vision-demo")
    click.echo("NOTE: the default model is a small LOCAL STAND-IN (a 2-layer ImageGPT, random init, 16-colour "
               "k-means palette)\n      hyperfitted on 16 shipped CIFAR-10 images; it shows the pipeline, not the "
               "paper's result.\n      The real thing needs a network:\n  " + REAL_COMMAND, err=True)
    palette = kmeans_palette(train_images.images, 16, seed=seed)
    base = build_imagegpt(32, palette, n_layer=2, n_embd=64, n_head=4, seed=seed)
    base.save(run / "base_model")
    train_config = TrainConfig(lr=3e-3, epochs=40, batch_size=8, seed=seed, target_loss=0.02)
    run.write_config({"demo": "cifar10-first20 stand-in", "n_train": n_train, "base": "random 2x64 ImageGPT",
                      "train": vars(train_config)}, seed=seed, command="vision demo")
    data = TokenSequences(images_to_tokens(train_images.images, palette, sos=base.sos), train_images.source_index)
    data.save(run / TRAIN_TOKENS)

    hyperfitted = build_imagegpt(32, palette, n_layer=2, n_embd=64, n_head=4, seed=seed)
    hyperfitted.model.load_state_dict(base.model.state_dict())
    hyperfit(hyperfitted.model, data, train_config, run,
             save_extra=lambda folder: hyperfitted.processor().save_pretrained(folder))

    shown = images.subset(torch.cat([torch.arange(n_train, len(images)), torch.arange(2)]))
    conditions = {
        "base-greedy": (base, DecodingConfig(), None),
        "base-top-p": (base, DecodingConfig.paper_top_p(seed), None),
        "hyperfit-greedy": (hyperfitted, DecodingConfig(), None),
        "hyperfit-blocked": (hyperfitted, DecodingConfig(), make_blocker(data, 2 * 32)),
    }
    files = {}
    for name, (model, decoding, blocker) in conditions.items():
        complete_run(model, shown, 0.25, decoding, run, name, blocker=blocker, device="cpu")
        files[name] = run / f"{name}.completions.safetensors"
    grid = grid_from_completions(files, run / "grid.png")
    run.log({"event": "demo_done", "seconds": time.time() - started})
    click.echo(f"rows 1-{len(held_out)}: held-out images; last 2 rows: hyperfitting images\n"
               f"grid: {grid}\nmetrics: {run / 'metrics.jsonl'}\nrun dir:", err=True)
    return run
