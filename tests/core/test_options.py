"""Each option is declared once (hyperfit_core.options): the click options, their checks and TrainConfig's fields
all come from that declaration, and a bad value gets the same message from the command line and from Python."""

import dataclasses

import click
import pytest

from hyperfit_core import engine
from hyperfit_core.cli_options import DecodingOptions, decoding_options, train_options
from hyperfit_core.decoding import decode_dtype
from hyperfit_core.errors import HyperfitError
from hyperfit_core import options
from hyperfit_core.options import Opt, auto_precision, cli_names, declarations, native_cpu_bf16, typed
from hyperfit_core.recipe import TrainSpec
from hyperfit_core.train import TrainConfig

# values the declaration's range or choices do not allow are made below; these two are formats
BAD_FORMATS = {"device": "tpu", "train_layers": "first:2"}


def bad_value(opt: Opt):
    """A value the declaration refuses, as Python holds it."""
    if opt.name in BAD_FORMATS:
        return BAD_FORMATS[opt.name]
    if opt.choices is not None:
        return "nonsense"
    if opt.min is not None:
        return opt.kind(opt.min if opt.min_open else opt.min - 1)
    if opt.max is not None:
        return opt.kind(opt.max if opt.max_open else opt.max + 1)
    raise AssertionError(f"{opt.name} refuses nothing: give it a range, choices or a check")


def _params(decorator) -> dict[str, click.Option]:
    command = click.command()(decorator(lambda **kwargs: kwargs))
    return {param.name: param for param in command.params}


def _cli_message(decorator, flag: str, value) -> str:
    command = click.command()(decorator(lambda **kwargs: kwargs))
    with pytest.raises(click.UsageError) as info:
        command.main([flag, str(value)], standalone_mode=False)
    return info.value.format_message()


def test_train_options_trainconfig_fields_and_declarations_are_one_set():
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(declarations(TrainConfig)) == fields  # every field declared
    python_only = {"progress", "disable_dropout"}
    assert set(cli_names(TrainConfig)) == fields - python_only
    # the train commands' options: TrainConfig's, plus the TrainSpec's --data-seed
    assert set(_params(train_options)) == set(cli_names(TrainConfig)) | {"data_seed"}
    for name, param in _params(train_options).items():
        opt = declarations(TrainSpec if name == "data_seed" else TrainConfig)[name]
        assert (param.default, param.help, param.opts[0]) == (opt.default, opt.help, opt.flag_name)


@pytest.mark.parametrize("name", cli_names(TrainConfig))
def test_a_bad_value_gets_the_same_line_from_the_cli_and_from_validate(name):
    opt = declarations(TrainConfig)[name]
    value = bad_value(opt)
    with pytest.raises(HyperfitError) as python:
        TrainConfig(**{name: value}).validate()
    message = str(python.value)
    assert "\n" not in message and message
    assert _cli_message(train_options, opt.flag_name, value) == f"Invalid value for '{opt.flag_name}': {message}"


def test_python_values_of_the_wrong_type_are_refused_in_one_line():
    for fields, message in [(dict(epochs="3"), "epochs must be a whole number, got '3'"),
                            (dict(epochs=True), "epochs must be a whole number, got True"),
                            (dict(lr=float("nan")), "learning rate must be a number, got nan"),
                            (dict(lr=None), "learning rate must be a number, got None"),
                            (dict(precision=16), "precision must be text, got 16")]:
        with pytest.raises(HyperfitError) as info:
            TrainConfig(**fields).validate()
        assert str(info.value) == message
    TrainConfig(lr=1, grad_clip=2).validate()  # a whole number is a number


def test_decoding_options_are_declared_once_and_checked_alike():
    assert set(_params(decoding_options)) == {f.name for f in dataclasses.fields(DecodingOptions)}
    with pytest.raises(HyperfitError) as python:
        DecodingOptions(decoding="top-p", top_p=1.5).decoding_config()
    assert _cli_message(decoding_options, "--top-p", 1.5) == f"Invalid value for '--top-p': {python.value}"
    assert str(python.value) == "top-p must be in (0, 1], got 1.5"
    with pytest.raises(HyperfitError, match="--temperature only apply to --decoding top-p or sample"):
        DecodingOptions(temperature=0.5).decoding_config()
    paper = DecodingOptions(decoding="top-p", decode_seed=3).decoding_config()
    assert (paper.temperature, paper.top_k, paper.top_p, paper.seed) == (0.7, 50, 0.9, 3)


def test_one_auto_precision_rule_for_training_and_decoding(monkeypatch):
    import torch

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    for device in ("cpu", "cuda"):
        rule = auto_precision("auto", device)
        assert engine.mixed_precision(TrainConfig(), device == "cuda") == {"bf16": "bf16", "fp32": "no"}[rule]
        assert decode_dtype("auto", torch.device(device)) == {"bf16": torch.bfloat16, "fp32": torch.float32}[rule]
    assert auto_precision("fp32", "cuda") == "fp32" and auto_precision("bf16", "cpu") == "bf16"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # what accelerate launch asked for wins over auto
    assert engine.mixed_precision(TrainConfig(), False) == "bf16"
    assert engine.mixed_precision(TrainConfig(precision="fp32"), False) == "no"



def test_bf16_on_a_cpu_without_bf16_instructions_is_honoured_with_one_warning(monkeypatch, capsys):
    assert native_cpu_bf16("processor: 0\nflags\t\t: fpu sse avx2 fma\n") is False
    assert native_cpu_bf16("flags\t\t: fpu avx2 avx512f avx512_bf16\n") is True
    assert native_cpu_bf16("flags : fpu amx_tile amx_bf16\n") is True
    assert native_cpu_bf16("Features\t: fp asimd bf16 i8mm\n") is True  # Arm
    assert native_cpu_bf16("model name : something\n") is None  # no flags line: cannot tell, no warning
    options._warn_once.cache_clear()
    monkeypatch.setattr(options, "native_cpu_bf16", lambda: False)
    assert auto_precision("bf16", "cpu") == "bf16" and auto_precision("bf16", "cpu") == "bf16"
    assert engine.mixed_precision(TrainConfig(precision="bf16"), False) == "bf16"  # training: still what was asked
    err = capsys.readouterr().err
    assert err.count("warning: bf16 on this CPU is emulated") == 1 and "--precision fp32" in err
    for precision, device in (("bf16", "cuda"), ("fp32", "cpu"), ("auto", "cpu")):
        auto_precision(precision, device)
    monkeypatch.setattr(options, "native_cpu_bf16", lambda: True)
    options._warn_once.cache_clear()
    auto_precision("bf16", "cpu")
    assert capsys.readouterr().err == ""

def test_typed_options_take_dicts_of_any_age_and_refuse_unknown_keys():
    @dataclasses.dataclass
    class Options:
        width: int = 3
        name: str | None = None

    assert typed(Options, {"width": 5}) == Options(width=5)  # what an older run left out gets the default
    assert typed(Options, None) == Options() and typed(Options, Options(4)) == Options(4)
    with pytest.raises(HyperfitError, match="unknown Options field"):
        typed(Options, {"height": 1})
