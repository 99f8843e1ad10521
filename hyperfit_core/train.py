"""The hyperfitting loop, top to bottom: next-token loss, Adam with a tiny learning rate, many epochs.

The trainer knows nothing of the model beyond "it maps input_ids to logits"; adapters decide what a
sequence is (ImageGPT: [SOS, p0..p1023]; text: [BOS, t1..t256]).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from tqdm.auto import tqdm

from hyperfit_core.atomic import atomic_dir, write_text
from hyperfit_core.errors import HyperfitError
from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences, epoch_order


@dataclass
class TrainConfig:
    """The paper's recipe by default: Adam 1e-6, no weight decay, batch 8, 20 epochs, dropout off."""

    lr: float = 1e-6
    weight_decay: float = 0.0
    batch_size: int = 8
    epochs: int = 20
    seed: int = 0
    target_loss: float | None = None  # stop once an epoch's mean loss is below this
    disable_dropout: bool = True
    device: str = "auto"  # auto -> cuda if available, else cpu
    precision: str = "auto"  # auto -> bf16 autocast on cuda, fp32 on cpu; or "fp32" / "bf16"
    grad_clip: float | None = None
    max_steps: int | None = None  # a step budget (pretraining to a deadline); a checkpoint is written on stopping
    progress: bool = True
    # speed options, off by default so the default run is unchanged
    compile: bool = False  # torch.compile the training forward (first steps pay the compile time)
    gradient_checkpointing: bool | None = None  # True: recompute activations in backward; None: leave the model as is

    def validate(self) -> None:
        """Raise one clear HyperfitError for a setting no run can use (called before any run dir exists)."""
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise HyperfitError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise HyperfitError(f"--max-steps must be at least 1, got {self.max_steps}")
        if not self.lr > 0:
            raise HyperfitError(f"--lr must be positive, got {self.lr}")

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def autocast_dtype(self, device: torch.device) -> torch.dtype | None:
        if self.precision == "fp32" or (self.precision == "auto" and device.type != "cuda"):
            return None
        if self.precision in ("auto", "bf16"):
            return torch.bfloat16
        raise HyperfitError(f"unknown precision {self.precision!r}: use auto, fp32 or bf16")


def next_token_loss(model, ids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting ids[:, 1:] from ids[:, :-1].

    The first token (SOS/BOS) is input only, so a 1025-token ImageGPT sequence uses 1024 positions and all
    1024 pixels are scored; logits may have fewer classes than the input vocabulary (ImageGPT: 512 vs 513).
    """
    logits = model(input_ids=ids[:, :-1]).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def _disable_dropout(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def _save_checkpoint(run: RunDir, model, optimizer, epoch: int, step: int) -> None:
    with atomic_dir(run / "checkpoint") as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save({"cpu": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
                   tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps({"epochs_done": epoch, "step": step}))


def _load_checkpoint(run: RunDir, model, optimizer) -> tuple[int, int]:
    ckpt = run / "checkpoint"
    if not (ckpt / "state.json").is_file():
        raise HyperfitError(f"nothing to resume: {ckpt} holds no checkpoint")
    load_model(model, str(ckpt / "model.safetensors"))
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
    rng = torch.load(ckpt / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["cpu"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    state = json.loads((ckpt / "state.json").read_text())
    return state["epochs_done"], state["step"]


def _is_checkpointing(model) -> bool:
    # transformers 5 deprecates is_gradient_checkpointing (a FutureWarning on every read)
    name = "is_activation_checkpointing" if hasattr(model, "is_activation_checkpointing") \
        else "is_gradient_checkpointing"
    return bool(getattr(model, name, False))


def _set_checkpointing(model, enable: bool) -> None:
    """transformers 5 renamed gradient_checkpointing_* to activation_checkpointing_*; use whichever exists."""
    if enable:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise HyperfitError(f"{type(model).__name__} does not support gradient checkpointing")
        name = "activation_checkpointing_enable" if hasattr(model, "activation_checkpointing_enable") \
            else "gradient_checkpointing_enable"
    else:
        name = "activation_checkpointing_disable" if hasattr(model, "activation_checkpointing_disable") \
            else "gradient_checkpointing_disable"
    getattr(model, name)()


def hyperfit(model, data: TokenSequences, config: TrainConfig, run: RunDir, *, resume: bool = False,
             loss_fn: Callable = next_token_loss, save_extra: Callable[[Path], None] | None = None,
             on_epoch_end: Callable[[int, float], None] | None = None):
    """Train `model` on `data` until the epochs run out (or the loss target is met); returns the model.

    Writes per-step and per-epoch losses to metrics.jsonl, an atomic checkpoint after every epoch, and the
    final model with save_pretrained (plus whatever `save_extra` adds, e.g. an image processor) to run/model.
    """
    if config.batch_size < 1 or config.epochs < 1:
        raise HyperfitError("batch size and epochs must be at least 1")
    device = config.resolved_device()
    amp_dtype = config.autocast_dtype(device)
    torch.manual_seed(config.seed)
    model.to(device)
    if config.disable_dropout:
        _disable_dropout(model)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                 fused=device.type == "cuda")
    start_epoch, step = _load_checkpoint(run, model, optimizer) if resume else (0, 0)
    checkpointing_was = None
    if config.gradient_checkpointing is not None:
        checkpointing_was = _is_checkpointing(model)
        _set_checkpointing(model, config.gradient_checkpointing)
    # the compiled wrapper shares the model's parameters; only the loss goes through it, so the model that is
    # saved and returned (and later used for decoding) is the plain one
    train_model = torch.compile(model) if config.compile else model

    n = len(data)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    bar = tqdm(total=min(total_steps, config.max_steps or total_steps), initial=start_epoch * steps_per_epoch,
               disable=not config.progress, desc="hyperfit", unit="step")
    epoch_mean = float("nan")
    for epoch in range(start_epoch, config.epochs):
        order = epoch_order(n, config.seed, epoch)
        total, started = 0.0, time.time()
        for first in range(0, n, config.batch_size):
            ids = data.ids[order[first:first + config.batch_size]].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                loss = loss_fn(train_model, ids)
            if not torch.isfinite(loss):
                bar.close()
                raise HyperfitError(f"training loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                                    "lower the learning rate or check the data")
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            value = loss.item()
            total += value * len(ids)
            run.log({"event": "step", "epoch": epoch + 1, "step": step, "loss": value})
            bar.set_postfix(epoch=epoch + 1, loss=f"{value:.4f}")
            bar.update(1)
            if config.max_steps is not None and step >= config.max_steps:
                break
        seen = min(n, first + config.batch_size)
        epoch_mean = total / seen
        run.log({"event": "epoch", "epoch": epoch + 1, "step": step, "mean_loss": epoch_mean,
                 "seconds": time.time() - started})
        _save_checkpoint(run, model, optimizer, epoch + 1, step)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, epoch_mean)
        if config.target_loss is not None and epoch_mean < config.target_loss:
            run.log({"event": "target_reached", "epoch": epoch + 1, "mean_loss": epoch_mean})
            break
        if config.max_steps is not None and step >= config.max_steps:
            run.log({"event": "step_budget_reached", "epoch": epoch + 1, "step": step})
            break
    bar.close()
    if checkpointing_was is not None and config.gradient_checkpointing != checkpointing_was:
        _set_checkpointing(model, checkpointing_was)  # a training-only setting: hand the model back as it came
    model.eval()
    with atomic_dir(run / "model") as tmp:
        model.save_pretrained(tmp)
        if save_extra is not None:
            save_extra(tmp)
    write_text(run / "train_config.json", json.dumps(asdict(config), indent=2) + "\n")
    return model
