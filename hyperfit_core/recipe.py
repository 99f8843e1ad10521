"""The one hyperfitting recipe, for every modality: pick N items -> token sequences -> hyperfit, in a run dir.

An adapter (vision, text) supplies a `Modality`: how to turn a `TrainSpec` into a model and the chosen token
sequences (checking every input first, writing nothing), and how to reload the model for a resume. The recipe
owns the run-dir layout, which is the same for every modality:

    config.json               {"config": {"spec": TrainSpec, ...adapter facts}, "seed", "command", "versions"}
    train_tokens.safetensors  the exact sequences trained on (resume reloads them; never re-derived)
    metrics.jsonl, loss.png, checkpoints/step-N/, model/   (hyperfit_core.train)
    ...                       whatever the adapter adds (text: prompts.safetensors; vision: palette.json)
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import click
import torch

from hyperfit_core.atomic import checked_out_dir
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import RUN_CONFIG, TRAIN_TOKENS, read_run_config
from hyperfit_core.options import check_fields, option, typed
from hyperfit_core.rundir import RunDir, broadcast_from_main, is_main_process
from hyperfit_core.sequences import TokenSequences
from hyperfit_core.train import TrainConfig, hyperfit


@dataclass
class TrainSpec:
    """Everything that defines a train run, as plain data (stored in config.json, read back on resume)."""

    model: str
    data: dict  # the adapter's data source, e.g. {"source": "cifar10", "root": "data", "split": "train"}
    train: TrainConfig = field(default_factory=TrainConfig)
    num_train: int = option(2000, "Random items to hyperfit on.", min=1, what="number of training items")
    data_seed: int | None = option(None, "Seed choosing which items are trained on (default: --seed).", kind=int,
                                   min=0)
    # the adapter's typed train options (its Modality.options class: vision's palette, text's window, ...); a dict
    # as read back from config.json until the adapter types it (`typed_options`)
    options: Any = field(default_factory=dict)

    @property
    def resolved_data_seed(self) -> int:
        return self.train.seed if self.data_seed is None else self.data_seed

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict) -> "TrainSpec":
        record = dict(record)
        return cls(train=TrainConfig(**record.pop("train")), **record)

    def validate(self, modality=None) -> "TrainSpec":
        """Every check of the spec (its own fields, the TrainConfig's, the adapter's options'), before anything is
        written; the options become the modality's typed class."""
        self.typed_options(modality)
        check_fields(self)
        self.train.validate()
        if dataclasses.is_dataclass(self.options):
            check_fields(self.options)
        return self

    def typed_options(self, modality=None):
        """The options as the modality's options class (a dict from config.json or a script gets its defaults)."""
        options_class = getattr(modality, "options", None)
        if options_class is not None:
            self.options = typed(options_class, self.options)
        return self.options


@dataclass
class Prepared:
    """What an adapter hands the recipe: the model, the chosen sequences, and what else to save."""

    model: torch.nn.Module
    data: TokenSequences | None  # None on resume (the saved tokens are reloaded)
    describe: str  # one line for the log: "hyperfitting X on N images (...)"
    info: dict = field(default_factory=dict)  # facts recorded in config.json (palette origin, tokenizer, corpus)
    save_extra: Callable[[Path], None] | None = None  # adds to RUN/model (image processor, tokenizer)
    write_extra: Callable[[RunDir], None] | None = None  # adds to the run dir (text: held-out prompts)


class Modality(Protocol):
    name: str  # "vision" / "text": the run dir is named "<name>-train"
    options: type  # its typed train options: a dataclass declared with hyperfit_core.options (TrainSpec.options)

    def prepare(self, spec: TrainSpec) -> Prepared: ...

    def reload(self, spec: TrainSpec, run: RunDir) -> Prepared: ...


def select_items(pool_size: int, count: int, seed: int, what: str = "training items") -> torch.Tensor:
    """`count` distinct indices of a pool drawn uniformly at random (seeded), in random order."""
    if count < 1:
        raise HyperfitError(f"the number of {what} must be at least 1, got {count}")
    if count > pool_size:
        raise HyperfitError(f"asked for {count} {what} but the data holds only {pool_size}")
    return torch.randperm(pool_size, generator=torch.Generator().manual_seed(seed))[:count]


def read_spec(run_path: str | Path) -> tuple[TrainSpec, dict]:
    """The TrainSpec and the whole config.json record of a train run dir."""
    record = read_run_config(run_path)
    try:
        return TrainSpec.from_dict(record["config"]["spec"]), record
    except (KeyError, TypeError) as exc:
        raise HyperfitError(f"{run_path} is not a train run (its {RUN_CONFIG} has no train spec: {exc})") from None


def train_run(spec: TrainSpec | None, modality: Modality, out: str | Path = "runs", *, resume: str | Path | None = None,
              at: str | Path | None = None, name: str | None = None, command: str | None = None,
              cli: dict | None = None, on_epoch_end: Callable | None = None, extend: dict | None = None) -> RunDir:
    """Hyperfit `spec.model` on `spec.num_train` items of `spec.data`; returns the run dir.

    Every input is checked (by `spec.validate()` and the adapter's `prepare`) before anything is
    written. `resume` continues a run dir from its last checkpoint with its own saved spec and tokens; `at`
    puts a new run in exactly that folder (scripts that name their runs) instead of `out/<time>-<name>`;
    `cli` (the command's resolved options) is recorded so a later --resume can refuse conflicting options;
    `on_epoch_end(model, epoch, mean_loss)` lets a script measure the model as it trains; `extend` (epochs,
    max_steps, target_loss) lets a resumed run go on longer than it was first asked to (recorded in the run).
    Under torchrun / accelerate launch every process runs this; only the main process writes.
    """
    if resume is not None:
        run = RunDir(resume, create=False)
        spec, record = read_spec(resume)
        if extend:
            unknown = set(extend) - {"epochs", "max_steps", "target_loss"}
            if unknown:
                raise HyperfitError(f"a resumed run can only be lengthened (epochs, max_steps, target_loss), not {unknown}")
            longer = {k for k in ("epochs", "max_steps") if k in extend and extend[k] != getattr(spec.train, k)}
            if longer and spec.train.lr_schedule != "constant":
                raise HyperfitError(f"the run's {spec.train.lr_schedule} learning-rate schedule ends at its planned "
                                    "last step; it cannot be lengthened (start a new run with more epochs)")
            for name, value in extend.items():
                setattr(spec.train, name, value)
        spec.validate(modality)  # a lengthened spec too, before it is written
        if extend:
            record["config"]["spec"] = spec.to_dict()
            if record["config"].get("cli"):  # a later --resume compares against what the run now has
                record["config"]["cli"].update(extend)
            run.write_config(record["config"], seed=record.get("seed"), command=record.get("command"))
            run.log({"event": "schedule_extended", **extend})
        _start_processes(spec.train)
        prepared = modality.reload(spec, run)
        data = TokenSequences.load(run / TRAIN_TOKENS)
    else:
        spec.validate(modality)
        _start_processes(spec.train)
        if at is not None and (Path(at) / RUN_CONFIG).exists():
            raise HyperfitError(f"{at} already holds a run; pass it as --resume to continue it")
        with checked_out_dir(out if at is None else Path(at).parent):  # nothing stays if an input is bad
            prepared = modality.prepare(spec)
            if spec.train.train_layers is not None:  # K against the model's blocks, before the run dir exists
                from hyperfit_core.trainable import check_train_layers

                check_train_layers(prepared.model, spec.train.train_layers)
        data = prepared.data
        run = _new_run(at, out, name or f"{modality.name}-train")
        run.write_config({"spec": spec.to_dict(), "cli": cli, **prepared.info}, seed=spec.train.seed,
                         command=command or f"{modality.name} train")
        if is_main_process():
            data.save(run / TRAIN_TOKENS)
        if prepared.write_extra is not None:
            prepared.write_extra(run)
        run.log({"event": "data", "items": len(data), "length": data.length, **prepared.info.get("log", {})})
    if is_main_process():
        click.echo(f"{prepared.describe} -> {run.path}", err=True)
    callback = (lambda epoch, loss: on_epoch_end(prepared.model, epoch, loss)) if on_epoch_end else None
    hyperfit(prepared.model, data, spec.train, run, resume=resume is not None, save_extra=prepared.save_extra,
             on_epoch_end=callback)
    return run


def _start_processes(config: TrainConfig) -> None:
    """Check what the engine will need of this machine (batch layout over the processes, the device), then,
    under torchrun / accelerate launch, join the process group now, as the engine will (before the model is
    loaded, so ZeRO-3 can partition it while loading, and so the run dir's path can be shared). A launch whose
    strategy can't run here is refused by this, before anything is written."""
    from hyperfit_core import launch
    from hyperfit_core.device import resolve_device
    from hyperfit_core.engine import batch_layout

    batch_layout(config.batch_size, config.per_device_batch_size, launch.world_size())
    wanted = launch.check_launch(resolve_device(config.device).type == "cpu")
    # a sharded launch starts here even on one process: what accelerate then sets up is checked against it now
    if launch.world_size() > 1 or wanted in launch.SHARDED:
        from hyperfit_core.engine import start_early

        start_early(config)


def _new_run(at, out, name: str) -> RunDir:
    """One run dir for all processes: the main process makes it, the others learn its path."""
    path = None
    if is_main_process():
        path = str(RunDir(at).path if at is not None else RunDir.create(out, name).path)
    return RunDir(broadcast_from_main(path), create=False)


def load_train_tokens(path: str | Path) -> TokenSequences:
    """The hyperfitting tokens of a train run: the run dir, its model/ folder, or the token file itself."""
    path = Path(path)
    for candidate in (path, path / TRAIN_TOKENS, path.parent / TRAIN_TOKENS):
        if candidate.is_file():
            return TokenSequences.load(candidate)
    raise HyperfitError(f"no hyperfitting tokens at {path}: pass --train-run with a train run dir "
                        f"(or its {TRAIN_TOKENS})")


def find_train_run(path: str | Path) -> Path:
    """A train run dir, its model/ folder, or a file inside it -> the run dir."""
    path = Path(path)
    for candidate in (path, path.parent, path.parent.parent):
        if (candidate / TRAIN_TOKENS).is_file() and (candidate / RUN_CONFIG).is_file():
            return candidate
    raise HyperfitError(f"{path} is not inside a train run (no {TRAIN_TOKENS}); pass --train-run RUN")
