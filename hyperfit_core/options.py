"""Each option declared once: its name, type, default, range or choices, unit and help.

An options class is a dataclass whose fields are declared with `option(...)` (the way transformers'
HfArgumentParser reads a field's metadata). Everything else is derived from that one declaration:

    click_options(TrainConfig)   the click options, with click's range / choice display in --help
    check_fields(config)         the check of every value: the CLI's parameter types run the same check, so a bad
                                 value gets the same one-line message from the command line and from Python
    pop_declared(cls, kwargs)    the options class built from a command's parsed options

Torch-free, so the CLI and the rating app can import it cheaply.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import click

from hyperfit_core.errors import HyperfitError, warn

SWITCH = ("auto", "on", "off")
PRECISIONS = ("auto", "fp32", "bf16")


def auto_precision(precision: str, device_type: str) -> str:
    """The one rule for precision "auto" (training and decoding alike): bf16 on CUDA, fp32 elsewhere. An explicit
    bf16 on a CPU without bf16 instructions is honoured with one warning (it is emulated there, several times
    slower than fp32: see native_cpu_bf16)."""
    if precision == "auto":
        return "bf16" if device_type == "cuda" else "fp32"
    if precision == "bf16" and device_type == "cpu" and native_cpu_bf16() is False:
        _warn_once("bf16 on this CPU is emulated (it has no avx512_bf16 / amx_bf16 / bf16 instructions): it runs "
                   "several times slower than --precision fp32")
    return precision


def native_cpu_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether the CPU computes bf16 natively (x86 avx512_bf16 or amx_bf16, Arm bf16), from /proc/cpuinfo's flags;
    None where that cannot be told (no /proc/cpuinfo, e.g. macOS), so no warning is given on a guess."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
                cpuinfo = handle.read()
        except OSError:
            return None
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    if not flags:
        return None
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


@lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    warn(message)


_KIND_WORDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def _either(choices) -> str:
    words = [str(c) for c in choices]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


@dataclass(frozen=True)
class Opt:
    """One option's declaration. `name` comes from the dataclass field it declares (or is given, for an option
    that declares no field)."""

    help: str
    default: Any = None
    kind: type = str
    name: str = ""
    flag: str | None = None  # the command-line spelling when it is not --name-with-dashes
    what: str | None = None  # what messages call it (default: the name with spaces)
    unit: str | None = None  # shown as the value's placeholder in --help: --max-steps STEPS
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False
    check: Callable[[Any], None] | None = None  # a further check raising HyperfitError (a format: last:K)
    cli: bool = True  # False: a Python-only setting (progress bars), no command-line option
    click_type: Any = None  # a click type of its own (a path that must exist), checked by click alone

    @property
    def flag_name(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def label(self) -> str:
        return self.what or self.name.replace("_", " ")

    def requirement(self) -> str | None:
        """The range in words, after "must": "be at least 1", "be positive", "not be negative", "be in (0, 1]"."""
        low, high = self.min, self.max
        if low is not None and high is not None:
            return f"be in {'(' if self.min_open else '['}{low:g}, {high:g}{')' if self.max_open else ']'}"
        if low is not None:
            if low == 0:
                return "be positive" if self.min_open else "not be negative"
            return f"be {'above' if self.min_open else 'at least'} {low:g}"
        if high is not None:
            return f"be {'below' if self.max_open else 'at most'} {high:g}"
        return None

    def problem(self, value) -> str | None:
        """What is wrong with `value`, in one line; None when it is fine. None is a value only of an option whose
        default is None (it means "off" or "derived")."""
        if value is None:
            return None if self.default is None else f"{self.label} must be {_KIND_WORDS[self.kind]}, got None"
        if self.kind is bool:
            fits = isinstance(value, bool)
        elif self.kind in (int, float):
            fits = isinstance(value, int if self.kind is int else (int, float)) and not isinstance(value, bool) \
                and not (isinstance(value, float) and math.isnan(value))
        else:
            fits = isinstance(value, self.kind)
        if not fits:
            return f"{self.label} must be {_KIND_WORDS[self.kind]}, got {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"unknown {self.label} {value!r}: use {_either(self.choices)}"
        low, high = self.min, self.max
        if (low is not None and (value <= low if self.min_open else value < low)) or \
                (high is not None and (value >= high if self.max_open else value > high)):
            return f"{self.label} must {self.requirement()}, got {value}"
        if self.check is not None:
            try:
                self.check(value)
            except HyperfitError as exc:
                return str(exc)
        return None

    def param_type(self):
        if self.click_type is not None:
            return self.click_type
        if self.choices is not None:
            return _CheckedChoice(self)
        if self.kind is int:
            return _CheckedIntRange(self) if self.requirement() else _CheckedInt(self)
        if self.kind is float:
            return _CheckedFloatRange(self) if self.requirement() else _CheckedFloat(self)
        return _CheckedText(self)

    def click_option(self, **changes):
        """This option as a click option decorator; `changes` adapt it for one command (another default, help)."""
        opt = dataclasses.replace(self, **changes) if changes else self
        if not opt.cli:
            raise HyperfitError(f"{opt.name} is not a command-line option")
        names = [opt.flag_name] + ([opt.name] if opt.flag is not None else [])
        extra = {"metavar": opt.unit.upper()} if opt.unit and opt.choices is None else {}
        return click.option(*names, type=opt.param_type(), default=opt.default, show_default=opt.default is not None,
                            help=opt.help, **extra)


class _Checked:
    """A click parameter type that parses as its click base type does, then runs the declaration's own check, so
    the command line reports what `check_fields` reports for the same value."""

    def __init__(self, opt: Opt, *args, **kwargs):
        self.opt = opt
        super().__init__(*args, **kwargs)

    def parse(self, value, param, ctx):
        return value

    def convert(self, value, param, ctx):
        if value is None:
            return None
        value = self.parse(value, param, ctx)
        problem = self.opt.problem(value)
        if problem:
            self.fail(problem, param, ctx)
        return value


class _CheckedChoice(_Checked, click.Choice):
    def __init__(self, opt: Opt):
        super().__init__(opt, opt.choices)


class _CheckedText(_Checked, click.types.StringParamType):
    parse = click.types.StringParamType.convert


class _CheckedInt(_Checked, click.types.IntParamType):
    parse = click.types.IntParamType.convert


class _CheckedFloat(_Checked, click.types.FloatParamType):
    parse = click.types.FloatParamType.convert


class _CheckedIntRange(_Checked, click.IntRange):  # a range subclass: click shows the range in --help
    parse = click.types.IntParamType.convert

    def __init__(self, opt: Opt):
        super().__init__(opt, opt.min, opt.max, opt.min_open, opt.max_open)


class _CheckedFloatRange(_Checked, click.FloatRange):
    parse = click.types.FloatParamType.convert

    def __init__(self, opt: Opt):
        super().__init__(opt, opt.min, opt.max, opt.min_open, opt.max_open)


def option(default, help: str, **declaration) -> Any:
    """A dataclass field declared as an option; `kind` defaults to the default's type."""
    kind = declaration.pop("kind", type(default))
    return field(default=default, metadata={"option": Opt(help=help, default=default, kind=kind, **declaration)})


def declarations(cls) -> dict[str, Opt]:
    """{field name: its declaration} of an options class, in field order."""
    return {f.name: dataclasses.replace(f.metadata["option"], name=f.name)
            for f in dataclasses.fields(cls) if "option" in f.metadata}


def declared(cls, name: str) -> Opt:
    return declarations(cls)[name]


def cli_names(cls) -> tuple[str, ...]:
    return tuple(name for name, opt in declarations(cls).items() if opt.cli)


def check_fields(obj) -> None:
    """Every declared field's own check; the first problem is raised as one line."""
    for name, opt in declarations(type(obj)).items():
        problem = opt.problem(getattr(obj, name))
        if problem:
            raise HyperfitError(problem)


def click_options(cls, names=None, **changes):
    """The click options of an options class (its command-line fields, in order; or just `names`), as one
    decorator. `changes` ({name: {"default": ...}}) adapt single options for one command."""
    chosen = [declarations(cls)[n] for n in names] if names is not None else \
        [opt for opt in declarations(cls).values() if opt.cli]

    def apply(func):
        for opt in reversed(chosen):
            func = opt.click_option(**changes.get(opt.name, {}))(func)
        return func
    return apply


def pop_declared(cls, kwargs: dict):
    """The options class built from (and taking out of) a command's keyword arguments."""
    return cls(**{name: kwargs.pop(name) for name in cli_names(cls)})


def typed(cls, value):
    """An adapter's options as its options class: an instance as it is; a dict (a config.json of any age, or a
    script's) with the declared defaults for what it leaves out; unknown keys are refused by name."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    unknown = sorted(set(value) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise HyperfitError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    return cls(**value)


def number_type(kind: type, min: float | None = None, *, min_open: bool = False, max: float | None = None):
    """argparse's `type=` for a script's count, seed or rate, checked as a declared option's range is: a bad value
    is argparse's one error line ("argument --num-train: must be at least 1, got 0") and exit status 2, before the
    script does any work."""
    declared = Opt(help="", kind=kind, default=0, min=min, min_open=min_open, max=max)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {_KIND_WORDS[kind]}, got {text!r}") from None
        problem = declared.problem(value)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem.strip())
        return value

    parse.__name__ = _KIND_WORDS[kind]  # argparse names the type by it in its own messages
    return parse


COUNT = number_type(int, 1)  # a number of items, steps, tokens, epochs, threads, repeats
NON_NEGATIVE = number_type(int, 0)  # a seed, warm-up steps
SEED = NON_NEGATIVE
POSITIVE = number_type(float, 0, min_open=True)  # a learning rate, a loss, minutes
