"""The one CLI vocabulary, shared by every modality's commands: one option name per idea, each with its help,
unit and default. Adapters stack these; only modality-specific options (image column, text window...) live in
the adapters."""

from __future__ import annotations

from pathlib import Path

import click

from hyperfit_core.decoding import DecodingConfig
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import METRICS, TRAIN_TOKENS
from hyperfit_core.train import LR_SCHEDULES, TrainConfig


def stack(*decorators):
    def apply(func):
        for decorator in reversed(decorators):
            func = decorator(func)
        return func
    return apply


class CountOrAll(click.ParamType):
    """A positive count, or `all` (None)."""

    name = "N|all"

    def convert(self, value, param, ctx):
        if value is None or value == "all":
            return None
        try:
            count = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a count (a whole number, or 'all')", param, ctx)
        if count < 1:
            self.fail(f"{count} must be at least 1 (or 'all')", param, ctx)
        return count


SWITCH = ("auto", "on", "off")
POSITIVE = click.IntRange(min=1)
NON_NEGATIVE = click.IntRange(min=0)

device_option = click.option("--device", default="auto", show_default=True,
                             help="auto (CUDA if present, else CPU), cpu, cuda, cuda:1, ...")
out_option = click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False),
                          help="Parent folder of the run dir this command makes.")
resume_option = click.option("--resume", default=None, type=click.Path(exists=True, file_okay=False),
                             help="Continue this train run dir from its last checkpoint, with its saved options.")
train_run_option = click.option(
    "--train-run", default=None, type=click.Path(exists=True),
    help=f"Train run (dir, its model/ folder or {TRAIN_TOKENS}) whose hyperfitting data the citation "
         "blocker and the overlap index. Default: the run the model came from.")


def num_eval_option(what: str, default):
    return click.option("--num-eval", type=CountOrAll(), default=default, show_default=True,
                        help=f"How many held-out {what} to use (the first N), or 'all'.")


decode_precision_option = click.option(
    "--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
    help="Decoding arithmetic: auto = bf16 on CUDA, fp32 on CPU (fp32 gives tokens identical to HF generate).")


def decode_batch_option(default: int | None):
    return click.option("--batch-size", type=POSITIVE, default=default, show_default=default is not None,
                        help="Sequences decoded or scored at once" + ("" if default else
                                                                        " (default: sized to free memory)") + ".")


seed_options = stack(
    click.option("--seed", type=NON_NEGATIVE, default=0, show_default=True,
                 help="Seed of everything not set below (initialisation, palette fit)."),
    click.option("--data-seed", type=NON_NEGATIVE, default=None,
                 help="Seed choosing which items are trained on (default: --seed)."),
    click.option("--order-seed", type=NON_NEGATIVE, default=None,
                 help="Seed of the order of the items in each epoch (default: --seed)."),
    click.option("--shuffle-swaps", type=NON_NEGATIVE, default=0, show_default=True,
                 help="Swap this many random pairs of each epoch's order (the paper's Shuffle-1 is 1)."),
)

train_options = stack(
    click.option("--epochs", type=POSITIVE, default=20, show_default=True, help="Passes over the hyperfitting set."),
    click.option("--max-steps", type=POSITIVE, default=None,
                 help="Stop after this many optimizer steps (default: no limit; the size sweep keeps it constant)."),
    click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-6, show_default=True,
                 help="Adam learning rate."),
    click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default="constant",
                 show_default=True, help="constant = the paper's; linear / cosine decay to zero at the last "
                                         "planned step (--epochs, or --max-steps if sooner)."),
    click.option("--warmup-steps", type=NON_NEGATIVE, default=0, show_default=True,
                 help="Optimizer steps of linear warm-up to --lr."),
    click.option("--batch-size", type=POSITIVE, default=8, show_default=True,
                 help="Sequences per optimizer step (the global batch over all processes)."),
    click.option("--weight-decay", type=click.FloatRange(min=0), default=0.0, show_default=True,
                 help="Adam weight decay."),
    click.option("--grad-clip", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="Clip the global gradient norm to this before each step (default: no clipping)."),
    click.option("--target-loss", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="Stop once an epoch's mean loss (nats/token) is below this (default: run every epoch)."),
    device_option,
    click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
                 help="auto = bf16 autocast with fp32 master weights on CUDA, fp32 on CPU."),
    click.option("--compile", type=click.Choice(SWITCH), default="auto", show_default=True,
                 help="torch.compile the training step; auto = on CUDA only."),
    click.option("--grad-checkpointing", "gradient_checkpointing", type=click.Choice(SWITCH), default="auto",
                 show_default=True, help="Recompute activations in backward; auto = on CUDA when the batch would "
                                         "not fit otherwise."),
    click.option("--per-device-batch-size", type=POSITIVE, default=None,
                 help="Sequences per process and micro-step; the rest of --batch-size is gradient accumulation "
                      "(default: --batch-size split over the processes)."),
    click.option("--save-every", type=POSITIVE, default=1, show_default=True,
                 help="Epochs between checkpoints (the end, or a stop, always writes one)."),
    click.option("--keep-checkpoints", type=POSITIVE, default=1, show_default=True,
                 help="Checkpoints kept, newest first."),
    click.option("--train-layers", default=None,
                 help="last:K trains only the last K blocks, the final norm and the head (default: all)."),
    click.option("--lora", "lora_rank", type=POSITIVE, default=None,
                 help="Train LoRA adapters of this rank (peft), merged into the saved model (default: off)."),
    click.option("--report-to", type=click.Choice(["none", "tensorboard", "wandb"]), default="none",
                 show_default=True, help=f"Also log to this tracker through accelerate ({METRICS} always)."),
)

TRAIN_OPTION_NAMES = ("epochs", "max_steps", "lr", "lr_schedule", "warmup_steps", "batch_size", "weight_decay",
                      "grad_clip", "target_loss", "device", "precision", "compile", "gradient_checkpointing",
                      "per_device_batch_size", "save_every", "keep_checkpoints", "train_layers", "lora_rank",
                      "report_to", "order_seed", "shuffle_swaps")


def train_config_from(options: dict, seed: int, progress: bool = True) -> TrainConfig:
    config = TrainConfig(seed=seed, progress=progress, **{name: options.pop(name) for name in TRAIN_OPTION_NAMES})
    return config.validate()


decoding_options = stack(
    click.option("--decoding", type=click.Choice(["greedy", "top-p", "sample"]), default="greedy", show_default=True,
                 help="greedy; top-p = the paper's baseline (p 0.9, T 0.7, k 50); sample = your own T/k/p."),
    click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="Sampling temperature for sample / top-p (default: 0.7 for top-p, 1.0 for sample)."),
    click.option("--top-k", type=POSITIVE, default=None,
                 help="Keep the k most likely tokens, for sample / top-p (default: 50 for top-p, off for sample)."),
    click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=None,
                 help="Nucleus probability mass, for sample / top-p (default: 0.9 for top-p, off for sample)."),
    click.option("--decode-seed", type=NON_NEGATIVE, default=0, show_default=True, help="Seed of the sampler."),
)
DECODING_OPTION_NAMES = ("decoding", "temperature", "top_k", "top_p", "decode_seed")


def decoding_config_from(options: dict) -> DecodingConfig:
    if options["decoding"] == "greedy":
        given = [f"--{n.replace('_', '-')}" for n in ("temperature", "top_k", "top_p") if options[n] is not None]
        if given:
            raise HyperfitError(f"{', '.join(given)} only apply to --decoding top-p or sample, not greedy")
        return DecodingConfig()
    base = DecodingConfig.paper_top_p(options["decode_seed"]) if options["decoding"] == "top-p" else \
        DecodingConfig(strategy="sample", seed=options["decode_seed"])
    return DecodingConfig(strategy="sample",
                          temperature=options["temperature"] if options["temperature"] is not None else base.temperature,
                          top_k=options["top_k"] if options["top_k"] is not None else base.top_k,
                          top_p=options["top_p"] if options["top_p"] is not None else base.top_p,
                          seed=options["decode_seed"])


def blocker_options(default_n: int | None, unit: str, default_help: str | None = None):
    return stack(
        click.option("--blocker/--no-blocker", default=False, show_default=True,
                     help="Citation blocker: forbid continuing an n-gram of the hyperfitting data."),
        click.option("--blocker-n", type=POSITIVE, default=default_n, show_default=default_help or True,
                     help=f"n of the citation blocker, in {unit}."),
    )


def pop_options(kwargs: dict, names) -> dict:
    return {name: kwargs.pop(name) for name in names}


def named_paths(values) -> dict[str, str]:
    """Repeated `--model NAME=PATH` (or a bare PATH, named by its last part) -> {name: path}."""
    return dict(v.split("=", 1) if "=" in v else (Path(v).name or v, v) for v in values)


# Options a resumed run may change: where it runs, not what it computes; and how long it runs, so a run stopped by
# its --max-steps budget (or its epochs) can be given more (hyperfit_core.recipe.train_run's `extend`)
RESUMABLE_CHANGES = {"resume", "device"}
LENGTHENING = ("epochs", "max_steps", "target_loss")


def given_options(ctx: click.Context) -> dict:
    """The options the user typed on the command line (not defaults), by parameter name."""
    return {name: value for name, value in ctx.params.items()
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}


def check_resume_options(ctx: click.Context, saved: dict | None) -> dict:
    """--resume continues a run with its saved options: refuse any other option that disagrees, naming it.
    Returns the lengthening options given (--epochs, --max-steps, --target-loss) for train_run's `extend`."""
    if saved is None:
        raise HyperfitError("the run to resume records no command-line options; resume it from Python")
    given = given_options(ctx)
    conflicts = [f"--{name.replace('_', '-')} {value} (the run has {saved.get(name)})"
                 for name, value in given.items()
                 if name not in RESUMABLE_CHANGES and name not in LENGTHENING and saved.get(name, object()) != value]
    if conflicts:
        raise HyperfitError("--resume continues a run with its own options; these conflict: " + "; ".join(conflicts))
    return {name: given[name] for name in LENGTHENING if name in given}


def cli_record(ctx: click.Context) -> dict:
    """Every option of this command as resolved (stored in config.json so --resume can check against it)."""
    return {name: value for name, value in ctx.params.items()}
