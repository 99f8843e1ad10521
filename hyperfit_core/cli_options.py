"""The one CLI vocabulary, shared by every modality's commands: one option name per idea, each with its help,
unit and default. Options that configure something (TrainConfig, TrainSpec, DecodingOptions) are derived from
that class's declarations (hyperfit_core.options); adapters stack these, and declare their own typed train
options the same way (image palette, text window...)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from hyperfit_core.decoding import DecodingConfig
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import ENTROPY_MATCH, LAYERS, RANKS, TRAIN_TOKENS
from hyperfit_core.options import (PRECISIONS, Opt, check_fields, cli_names, click_options, declared, option,
                                   pop_declared)
from hyperfit_core.recipe import TrainSpec
from hyperfit_core.train_config import TrainConfig


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


POSITIVE = click.IntRange(min=1)
NON_NEGATIVE = click.IntRange(min=0)

# --device for commands that decode or score: any device torch knows (training accepts auto, cpu and cuda[:N])
device_option = declared(TrainConfig, "device").click_option(check=None)
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


decode_precision_option = Opt(
    name="precision", default="auto", choices=PRECISIONS,
    help="Decoding arithmetic: auto = bf16 on CUDA, fp32 on CPU (fp32 gives tokens identical to HF generate).",
).click_option()


mechanism_options = stack(
    click.option("--match-entropy", is_flag=True,
                 help="Find, by bisection, the temperature at which the first (base) model's mean entropy on these "
                      f"positions equals the second (hyperfitted) model's at T=1 ({ENTROPY_MATCH})."),
    click.option("--ranks", "ranks_run", default=None, type=click.Path(exists=True),
                 help=f"A generation run (or one of its condition files): the rank under the first (base) model of "
                      f"each token it chose; histogram and shares outside top-1/5/50 ({RANKS} + PNG)."),
    click.option("--write-logit-bias", default=None, type=click.Path(dir_okay=False),
                 help="Write the mean log-probability shift (second model minus first) per vocabulary entry "
                      "over these positions to this safetensors file: the static-reweighting ablation's bias."),
    click.option("--layers", is_flag=True,
                 help=f"Per block: effective dimension (participation ratio) of the hidden states of each model and "
                      f"relative weight change, second vs first ({LAYERS} + PNG)."),
)
MECHANISM_OPTION_NAMES = ("match_entropy", "ranks_run", "write_logit_bias", "layers")

def swap_blocks_options(what: str):
    """`swap-blocks`: the base, the donor, how many last blocks, the new folder."""
    return stack(
        click.option("--base", required=True, help=f"Base {what}: hub id or local folder."),
        click.option("--donor", required=True, help=f"{what} whose last blocks replace the base's (e.g. RUN/model)."),
        click.option("--last", required=True,
                     help="How many of the last transformer blocks to take: 1, 2, ... or all."),
        click.option("--out", required=True, type=click.Path(file_okay=False),
                     help="New model folder (save_pretrained, with the base's tokenizer / image processor)."),
    )


logit_bias_option = click.option(
    "--logit-bias", default=None, type=click.Path(exists=True, dir_okay=False),
    help="Add this fixed per-token logit bias (analyze --write-logit-bias) to the model's logits at every step.")


def decode_batch_option(default: int | None):
    return click.option("--batch-size", type=POSITIVE, default=default, show_default=default is not None,
                        help="Sequences decoded or scored at once" + ("" if default else
                                                                        " (default: sized to free memory)") + ".")


# every TrainConfig option (TrainConfig's fields declare them), and the TrainSpec's --data-seed after --seed
_TRAIN_NAMES = cli_names(TrainConfig)
train_options = stack(click_options(TrainConfig, _TRAIN_NAMES[:1]), declared(TrainSpec, "data_seed").click_option(),
                      click_options(TrainConfig, _TRAIN_NAMES[1:]))


def train_config_from(options: dict, progress: bool = True) -> TrainConfig:
    """The TrainConfig of a `train` command's options (taken out of `options`), checked."""
    config = pop_declared(TrainConfig, options)
    config.progress = progress
    return config.validate()


@dataclass
class DecodingOptions:
    """How a command decodes, as its options say; `decoding_config()` resolves the paper's defaults."""

    decoding: str = option("greedy", "greedy; top-p = the paper's baseline (p 0.9, T 0.7, k 50); sample = your own "
                                     "T/k/p.", choices=("greedy", "top-p", "sample"))
    temperature: float | None = option(None, "Sampling temperature for sample / top-p (default: 0.7 for top-p, 1.0 "
                                             "for sample).", kind=float, min=0, min_open=True)
    top_k: int | None = option(None, "Keep the k most likely tokens, for sample / top-p (default: 50 for top-p, off "
                                     "for sample).", kind=int, min=1, what="top-k")
    top_p: float | None = option(None, "Nucleus probability mass, for sample / top-p (default: 0.9 for top-p, off "
                                       "for sample).", kind=float, min=0, max=1, min_open=True, what="top-p")
    decode_seed: int = option(0, "Seed of the sampler.", min=0)

    def decoding_config(self) -> DecodingConfig:
        check_fields(self)
        if self.decoding == "greedy":
            given = [f"--{n.replace('_', '-')}" for n in ("temperature", "top_k", "top_p")
                     if getattr(self, n) is not None]
            if given:
                raise HyperfitError(f"{', '.join(given)} only apply to --decoding top-p or sample, not greedy")
            return DecodingConfig()
        base = DecodingConfig.paper_top_p(self.decode_seed) if self.decoding == "top-p" else \
            DecodingConfig(strategy="sample", seed=self.decode_seed)
        return DecodingConfig(strategy="sample",
                              temperature=self.temperature if self.temperature is not None else base.temperature,
                              top_k=self.top_k if self.top_k is not None else base.top_k,
                              top_p=self.top_p if self.top_p is not None else base.top_p, seed=self.decode_seed)


decoding_options = click_options(DecodingOptions)
DECODING_OPTION_NAMES = cli_names(DecodingOptions)


def decoding_config_from(options: dict) -> DecodingConfig:
    return DecodingOptions(**options).decoding_config()


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
