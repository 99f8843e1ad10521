"""TrainConfig: the hyperfitting recipe's settings, each declared once (hyperfit_core.options). The `train` commands'
options, their checks and their help are all derived from the fields below."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import METRICS
from hyperfit_core.options import PRECISIONS, SWITCH, check_fields, option

LR_SCHEDULES = ("constant", "linear", "cosine")
TRACKERS = ("none", "tensorboard", "wandb")


def _check_device(name: str) -> None:
    if not (name in ("auto", "cpu") or name.startswith("cuda")):
        raise HyperfitError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")


def _check_train_layers(spec: str) -> None:
    from hyperfit_core.trainable import parse_train_layers

    parse_train_layers(spec)


@dataclass
class TrainConfig:
    """The paper's recipe by default: Adam 1e-6, no weight decay, batch 8, 20 epochs, dropout off.
    The fields are in the order the `train` commands list them."""

    seed: int = option(0, "Seed of everything not set below (initialisation, palette fit).", min=0)
    order_seed: int | None = option(None, "Seed of the order of the items in each epoch (default: --seed).",
                                    kind=int, min=0)
    shuffle_swaps: int = option(0, "Swap this many random pairs of each epoch's order (the paper's Shuffle-1 is 1).",
                                min=0)
    epochs: int = option(20, "Passes over the hyperfitting set.", min=1)
    max_steps: int | None = option(None, "Stop after this many optimizer steps (default: no limit; the size sweep "
                                         "keeps it constant).",
                                   kind=int, min=1, unit="steps")
    lr: float = option(1e-6, "Adam learning rate.", min=0, min_open=True, what="learning rate")
    lr_schedule: str = option("constant", "constant = the paper's; linear / cosine decay to zero at the last planned "
                                          "step (--epochs, or --max-steps if sooner).",
                              choices=LR_SCHEDULES, what="learning-rate schedule")
    warmup_steps: int = option(0, "Optimizer steps of linear warm-up to --lr.", min=0,
                               what="warm-up steps", unit="steps")
    batch_size: int = option(8, "Sequences per optimizer step (the global batch over all processes).", min=1)
    weight_decay: float = option(0.0, "Adam weight decay.", min=0)
    grad_clip: float | None = option(None, "Clip the global gradient norm to this before each step (default: no "
                                           "clipping).", kind=float, min=0, min_open=True)
    target_loss: float | None = option(None, "Stop once an epoch's mean loss (nats/token) is below this (default: "
                                             "run every epoch).", kind=float, min=0, min_open=True, unit="nats")
    device: str = option("auto", "auto (CUDA if present, else CPU), cpu, cuda, cuda:1, ...", check=_check_device)
    precision: str = option("auto", "auto = bf16 autocast with fp32 master weights on CUDA, fp32 on CPU.",
                            choices=PRECISIONS)
    compile: str = option("auto", "torch.compile the training step; auto = on CUDA only.",
                          choices=SWITCH, what="compile setting")
    gradient_checkpointing: str = option("auto", "Recompute activations in backward; auto = on CUDA when the batch "
                                                 "would not fit otherwise.", choices=SWITCH,
                                         flag="--grad-checkpointing", what="gradient checkpointing setting")
    per_device_batch_size: int | None = option(None, "Sequences per process and micro-step; the rest of --batch-size "
                                                     "is gradient accumulation (default: --batch-size split over the "
                                                     "processes).", kind=int, min=1, what="per-device batch size")
    save_every: int = option(1, "Epochs between checkpoints (the end, or a stop, always writes one).", min=1,
                             unit="epochs")
    keep_checkpoints: int = option(1, "Checkpoints kept, newest first.", min=1)
    train_layers: str | None = option(None, "last:K trains only the last K blocks, the final norm and the head "
                                            "(default: all); with --lora, LoRA on the last K blocks only.", kind=str,
                                      check=_check_train_layers)
    lora_rank: int | None = option(None, "Train LoRA adapters of this rank (peft), merged into the saved model "
                                         "(default: off; on every block, or the --train-layers last:K ones).",
                                   kind=int, min=1, flag="--lora", what="LoRA rank")
    report_to: str = option("none", f"Also log to this tracker through accelerate ({METRICS} always).",
                            choices=TRACKERS, what="tracker")
    disable_dropout: bool = option(True, "Set every dropout to 0 (the paper's setting).", cli=False)
    progress: bool = option(True, "Show a progress bar.", cli=False)

    def __post_init__(self):
        # older configs (and the Python API) said compile=True/False, gradient_checkpointing=True/False/None
        if isinstance(self.compile, bool):
            self.compile = "on" if self.compile else "off"
        if self.gradient_checkpointing is None:
            self.gradient_checkpointing = "auto"
        elif isinstance(self.gradient_checkpointing, bool):
            self.gradient_checkpointing = "on" if self.gradient_checkpointing else "off"

    def validate(self) -> "TrainConfig":
        """Every check of the recipe, one clear line each: each field's own (its declaration's, the same the CLI
        runs), then those between fields. Call before any run dir exists."""
        check_fields(self)
        if self.per_device_batch_size is not None and self.per_device_batch_size > self.batch_size:
            raise HyperfitError(f"per-device batch size must be between 1 and the batch size {self.batch_size}, "
                                f"got {self.per_device_batch_size}")
        return self

    def planned_steps(self, samples: int) -> int:
        """Update steps this config runs over `samples` sequences (the end of a decaying schedule)."""
        steps = self.epochs * math.ceil(samples / self.batch_size)
        return steps if self.max_steps is None else min(steps, self.max_steps)

    def lr_at(self, step: int, total: int) -> float:
        """Learning rate of update `step` (0-based) of `total`: a pure function of the step, so a resumed run
        continues the same curve. Warm-up first, then constant or a decay that reaches zero after the last step."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.lr_schedule == "constant":
            return self.lr
        progress = min(1.0, (step - self.warmup_steps) / max(1, total - self.warmup_steps))
        if self.lr_schedule == "linear":
            return self.lr * (1.0 - progress)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * progress))

    def resolved_order_seed(self) -> int:
        return self.seed if self.order_seed is None else self.order_seed
