"""Click options shared by every modality's commands: training recipe, decoding, citation blocker."""

from __future__ import annotations


import click

from hyperfit_core.decoding import DecodingConfig
from hyperfit_core.train import TrainConfig


def _stack(*decorators):
    def apply(func):
        for decorator in reversed(decorators):
            func = decorator(func)
        return func
    return apply


train_options = _stack(
    click.option("--epochs", type=int, default=20, show_default=True, help="Passes over the hyperfitting set."),
    click.option("--lr", type=float, default=1e-6, show_default=True, help="Adam learning rate."),
    click.option("--batch-size", type=int, default=8, show_default=True),
    click.option("--weight-decay", type=float, default=0.0, show_default=True),
    click.option("--target-loss", type=float, default=None, help="Stop once an epoch's mean loss is below this."),
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ..."),
    click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
                 help="auto = bf16 autocast on CUDA, fp32 on CPU."),
)


def train_config_from(options: dict, seed: int, progress: bool = True) -> TrainConfig:
    return TrainConfig(lr=options["lr"], weight_decay=options["weight_decay"], batch_size=options["batch_size"],
                       epochs=options["epochs"], seed=seed, target_loss=options["target_loss"],
                       device=options["device"], precision=options["precision"], progress=progress)


decoding_options = _stack(
    click.option("--decoding", type=click.Choice(["greedy", "top-p", "sample"]), default="greedy", show_default=True,
                 help="greedy; top-p = the paper's baseline (p 0.9, T 0.7, k 50); sample = your own T/k/p."),
    click.option("--temperature", type=float, default=None, help="Sampling temperature (sample / top-p)."),
    click.option("--top-k", type=int, default=None, help="Keep the k most likely tokens (sample / top-p)."),
    click.option("--top-p", type=float, default=None, help="Nucleus mass (sample / top-p)."),
    click.option("--decode-seed", type=int, default=0, show_default=True, help="Seed of the sampler."),
)


def decoding_config_from(options: dict) -> DecodingConfig:
    if options["decoding"] == "greedy":
        return DecodingConfig()
    base = DecodingConfig.paper_top_p(options["decode_seed"]) if options["decoding"] == "top-p" else \
        DecodingConfig(strategy="sample", seed=options["decode_seed"])
    return DecodingConfig(strategy="sample",
                          temperature=options["temperature"] if options["temperature"] is not None else base.temperature,
                          top_k=options["top_k"] if options["top_k"] is not None else base.top_k,
                          top_p=options["top_p"] if options["top_p"] is not None else base.top_p,
                          seed=options["decode_seed"])


def blocker_options(default_n: int | None, unit: str, default_help: str | None = None):
    return _stack(
        click.option("--blocker/--no-blocker", default=False, show_default=True,
                     help="Citation blocker: forbid continuing an n-gram of the hyperfitting data."),
        click.option("--blocker-n", type=int, default=default_n, show_default=default_help or True,
                     help=f"n of the citation blocker, in {unit}."),
    )


def pop_options(kwargs: dict, names) -> dict:
    return {name: kwargs.pop(name) for name in names}


TRAIN_OPTION_NAMES = ("epochs", "lr", "batch_size", "weight_decay", "target_loss", "device", "precision")
DECODING_OPTION_NAMES = ("decoding", "temperature", "top_k", "top_p", "decode_seed")


def named_paths(values) -> dict[str, str]:
    """Repeated `--model NAME=PATH` (or a bare PATH, named by its last part) -> {name: path}."""
    from pathlib import Path

    return dict(v.split("=", 1) if "=" in v else (Path(v).name or v, v) for v in values)
