"""The hyperfitting loop, top to bottom: next-token loss, Adam with a tiny learning rate, many epochs.

The trainer knows nothing of the model beyond "it maps input_ids to logits"; adapters decide what a
sequence is (ImageGPT: [SOS, p0..p1023]; text: [BOS, t1..t256]). accelerate runs it: the same code trains on one
CPU or GPU, under `torchrun` / `accelerate launch` with DDP, FSDP2 or DeepSpeed ZeRO (docs/scale.md).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from hyperfit_core import engine
from hyperfit_core.atomic import atomic_dir, write_text
from hyperfit_core.checkpoint import load_checkpoint, save_checkpoint
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import METRICS, TRAIN_CONFIG
from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences, epoch_order

_SWITCH = ("auto", "on", "off")
LR_SCHEDULES = ("constant", "linear", "cosine")


@dataclass
class TrainConfig:
    """The paper's recipe by default: Adam 1e-6, no weight decay, batch 8, 20 epochs, dropout off."""

    lr: float = 1e-6
    lr_schedule: str = "constant"  # constant (the paper's), linear or cosine decay to zero at the planned last step
    warmup_steps: int = 0  # linear warm-up from lr/warmup_steps to lr over this many steps
    weight_decay: float = 0.0
    batch_size: int = 8  # the GLOBAL batch: per-device batch x processes x accumulation steps
    per_device_batch_size: int | None = None  # None: batch_size split over the processes, no accumulation
    epochs: int = 20
    seed: int = 0  # everything random except the order: initialisation, dropout, ...
    order_seed: int | None = None  # the epoch order; None -> seed
    shuffle_swaps: int = 0  # swap this many random pairs of every epoch's order (the paper's Shuffle-1 is 1)
    target_loss: float | None = None  # stop once an epoch's mean loss is below this
    disable_dropout: bool = True
    device: str = "auto"  # auto -> cuda if available, else cpu; or cpu / cuda / cuda:N (one process)
    precision: str = "auto"  # auto -> bf16 autocast over fp32 master weights on cuda, fp32 on cpu; or fp32 / bf16
    grad_clip: float | None = None
    max_steps: int | None = None  # a budget of update steps; a checkpoint is written on stopping
    progress: bool = True
    compile: str = "auto"  # torch.compile the training forward: auto = on CUDA only (not DeepSpeed)
    gradient_checkpointing: str = "auto"  # recompute activations in backward: auto = on CUDA when they won't fit
    save_every: int = 1  # epochs between checkpoints (the end or a stop always writes one)
    keep_checkpoints: int = 1  # keep the newest K
    train_layers: str | None = None  # "last:K": train only the last K blocks, the final norm and the LM head
    lora_rank: int | None = None  # LoRA adapters of this rank (peft), merged into the saved model
    report_to: str = "none"  # also log to tensorboard / wandb through accelerate; metrics.jsonl always

    def __post_init__(self):
        # older configs (and the Python API) said compile=True/False, gradient_checkpointing=True/False/None
        if isinstance(self.compile, bool):
            self.compile = "on" if self.compile else "off"
        if self.gradient_checkpointing is None:
            self.gradient_checkpointing = "auto"
        elif isinstance(self.gradient_checkpointing, bool):
            self.gradient_checkpointing = "on" if self.gradient_checkpointing else "off"

    def validate(self) -> "TrainConfig":
        """Every check of the recipe in one place, one clear line each; call before any run dir exists."""
        def need(ok, message):
            if not ok:
                raise HyperfitError(message)

        need(self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}")
        need(self.per_device_batch_size is None or 1 <= self.per_device_batch_size <= self.batch_size,
             f"per-device batch size must be between 1 and the batch size {self.batch_size}, "
             f"got {self.per_device_batch_size}")
        need(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}")
        need(self.max_steps is None or self.max_steps >= 1, f"max steps must be at least 1, got {self.max_steps}")
        need(self.lr > 0, f"learning rate must be positive, got {self.lr}")
        need(self.lr_schedule in LR_SCHEDULES,
             f"unknown learning-rate schedule {self.lr_schedule!r}: use {', '.join(LR_SCHEDULES)}")
        need(self.warmup_steps >= 0, f"warm-up steps must not be negative, got {self.warmup_steps}")
        need(self.weight_decay >= 0, f"weight decay must not be negative, got {self.weight_decay}")
        need(self.shuffle_swaps >= 0, f"shuffle swaps must not be negative, got {self.shuffle_swaps}")
        need(self.grad_clip is None or self.grad_clip > 0, f"grad clip must be positive, got {self.grad_clip}")
        need(self.precision in ("auto", "fp32", "bf16"),
             f"unknown precision {self.precision!r}: use auto, fp32 or bf16")
        need(self.compile in _SWITCH, f"unknown compile setting {self.compile!r}: use auto, on or off")
        need(self.gradient_checkpointing in _SWITCH,
             f"unknown gradient checkpointing setting {self.gradient_checkpointing!r}: use auto, on or off")
        need(self.save_every >= 1, f"save every must be at least 1 epoch, got {self.save_every}")
        need(self.keep_checkpoints >= 1, f"keep checkpoints must be at least 1, got {self.keep_checkpoints}")
        need(self.report_to in ("none", "tensorboard", "wandb"),
             f"unknown tracker {self.report_to!r}: use none, tensorboard or wandb")
        need(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
             f"unknown device {self.device!r}: use auto, cpu, cuda or cuda:N")
        need(self.lora_rank is None or self.lora_rank >= 1, f"LoRA rank must be at least 1, got {self.lora_rank}")
        need(not (self.lora_rank and self.train_layers), "choose one of --train-layers and --lora, not both")
        if self.train_layers is not None:
            from hyperfit_core.trainable import parse_train_layers

            parse_train_layers(self.train_layers)
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


def hyperfit(model, data: TokenSequences, config: TrainConfig, run: RunDir, *, resume: bool = False,
             loss_fn: Callable = next_token_loss, save_extra: Callable[[Path], None] | None = None,
             on_epoch_end: Callable[[int, float], None] | None = None):
    """Train `model` on `data` until the epochs run out (or the loss target / step budget is met); returns it.

    Each global batch of the epoch order is cut into contiguous per-rank slices (and those into micro batches),
    so every process count sees the same samples in the same order and the loss is the mean over the true batch.
    Rank 0 writes per-step and per-epoch losses (reduced over ranks) to metrics.jsonl, a checkpoint every
    `save_every` epochs and at the end, the final model with save_pretrained (LoRA merged; plus whatever
    `save_extra` adds, e.g. an image processor) to run/model, and loss.png.
    """
    from accelerate.utils import set_seed

    config.validate()
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    per_device, accumulation = engine.batch_layout(config.batch_size, config.per_device_batch_size, processes)
    acc = engine.make_accelerator(config, run.path, accumulation)
    rank, main = acc.process_index, acc.is_main_process
    set_seed(config.seed)
    if config.disable_dropout:
        _disable_dropout(model)

    # what trains: everything, the last K blocks (+ final norm and head), or LoRA adapters
    requires_grad_was = {name: p.requires_grad for name, p in model.named_parameters()}
    trained = model
    if config.train_layers:
        from hyperfit_core.trainable import apply_train_layers

        apply_train_layers(model, config.train_layers)
    elif config.lora_rank:
        from hyperfit_core.trainable import apply_lora, lora_scaling, lora_transposed

        trained = apply_lora(model, config.lora_rank)
        lora_merge = (lora_scaling(trained), lora_transposed(trained))
    checkpointing_was = engine.is_checkpointing(model)
    checkpointing = engine.want_checkpointing(config, acc, model, per_device, data.length - 1)
    if checkpointing != checkpointing_was:
        engine.set_checkpointing(model, checkpointing)
    input_grads = checkpointing and bool(config.train_layers or config.lora_rank)
    if input_grads:
        model.enable_input_require_grads()  # frozen embeddings: recomputed blocks still need an input grad
    trained.train()

    engine.configure_plugins(acc, config, per_device, accumulation)
    optimizer = engine.build_optimizer(acc, (p for p in trained.parameters() if p.requires_grad), config)
    engine.register_portable_weights(acc)
    prepared, optimizer = acc.prepare(trained, optimizer)
    if config.report_to != "none":
        acc.init_trackers("hyperfit", config={k: v for k, v in asdict(config).items()
                                              if isinstance(v, (int, float, str, bool))})

    n, batch = len(data), config.batch_size
    start_epoch, start_sample, step, epoch_sum, epoch_seen = 0, 0, 0, 0.0, 0
    if resume:
        state = load_checkpoint(acc, run.path)
        if state["batch_size"] != batch or state["samples"] != n:
            raise HyperfitError(f"the checkpoint was written with batch {state['batch_size']} on {state['samples']} "
                                f"sequences; this run has batch {batch} on {n}")
        start_epoch, start_sample, step = state["epoch"], state["sample_in_epoch"], state["step"]
        epoch_sum, epoch_seen = state["epoch_loss_sum"], state["epoch_seen"]
    # the compiled wrapper shares the model's parameters; only the loss goes through it, so the model that is
    # saved and returned (and later used for decoding) is the plain one
    train_model = torch.compile(prepared) if engine.want_compile(config, acc) else prepared
    if main:
        run.log({"event": "engine", **engine.describe(acc), "per_device_batch": per_device,
                 "accumulation": accumulation, "gradient_checkpointing": checkpointing,
                 "compile": train_model is not prepared, "resumed_at_step": step if resume else None})

    def checkpoint(epoch, sample_in_epoch):
        save_checkpoint(acc, run.path, {
            "epoch": epoch, "sample_in_epoch": sample_in_epoch, "step": step, "epoch_loss_sum": epoch_sum,
            "epoch_seen": epoch_seen, "batch_size": batch, "samples": n, "processes": acc.num_processes,
            "strategy": engine.strategy(acc), "epochs_done": epoch}, keep=config.keep_checkpoints)

    budget = config.max_steps
    total_steps = config.planned_steps(n)
    bar = tqdm(total=total_steps, initial=step,
               disable=not (config.progress and main), desc="hyperfit", unit="step")
    first = start_sample
    stop = budget is not None and step >= budget
    try:
        for epoch in range(start_epoch, config.epochs):
            if stop:
                break
            order = epoch_order(n, config.resolved_order_seed(), epoch, swaps=config.shuffle_swaps)
            started = time.time()
            for first in range(start_sample if epoch == start_epoch else 0, n, batch):
                rows = order[first:first + batch]
                lo, hi = engine.split_bounds(len(rows), acc.num_processes, rank)  # this rank's contiguous slice
                mine = rows[lo:hi]
                # set before backward: DeepSpeed steps inside the last micro batch's backward
                lr = config.lr_at(step, total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss_sum = torch.zeros((), dtype=torch.float64, device=acc.device)
                for micro in range(accumulation):
                    a, b = engine.split_bounds(len(mine), accumulation, micro)
                    part = mine[a:b]
                    # a rank without samples in a short last batch still joins the collectives, with weight 0
                    ids = data.ids[part if len(part) else rows[:1]].to(acc.device, non_blocking=True)
                    with acc.accumulate(prepared):
                        loss = loss_fn(train_model, ids)
                        # gradients are averaged over ranks and divided by the accumulation steps: this weight
                        # makes them the mean over the batch's true sample count
                        weight = len(part) * acc.num_processes * accumulation / len(rows)
                        acc.backward(loss if weight == 1 else loss * weight)
                    loss_sum += loss.detach().double() * len(part)
                value = (acc.reduce(loss_sum, "sum") / len(rows)).item() if acc.num_processes > 1 \
                    else loss.item() if accumulation == 1 else loss_sum.item() / len(rows)
                if not math.isfinite(value):
                    raise HyperfitError(f"training loss became {value} at epoch {epoch + 1}, step {step + 1}; "
                                        "lower the learning rate or check the data")
                if config.grad_clip and acc.sync_gradients:
                    acc.clip_grad_norm_(prepared.parameters(), config.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                epoch_sum += value * len(rows)
                epoch_seen += len(rows)
                if main:
                    run.log({"event": "step", "epoch": epoch + 1, "step": step, "loss": value, "lr": lr})
                    bar.set_postfix(epoch=epoch + 1, loss=f"{value:.4f}")
                    bar.update(1)
                if config.report_to != "none":
                    acc.log({"loss": value, "epoch": epoch + 1}, step=step)
                if budget is not None and step >= budget:
                    stop = True
                    break
            epoch_done = first + batch >= n
            epoch_mean = epoch_sum / max(epoch_seen, 1)
            if main:
                run.log({"event": "epoch", "epoch": epoch + 1, "step": step, "mean_loss": epoch_mean,
                         "seconds": time.time() - started, **({} if epoch_done else {"partial": epoch_seen})})
            if config.report_to != "none":
                acc.log({"epoch_mean_loss": epoch_mean}, step=step)
            reached = config.target_loss is not None and epoch_done and epoch_mean < config.target_loss
            last = epoch + 1 == config.epochs or stop or reached
            if epoch_done:
                epoch_sum, epoch_seen = 0.0, 0
                if (epoch + 1) % config.save_every == 0 or last:
                    checkpoint(epoch + 1, 0)
            else:
                checkpoint(epoch, first + batch)  # stopped mid-epoch: resume from the next batch
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, epoch_mean)
            if reached:
                if main:
                    run.log({"event": "target_reached", "epoch": epoch + 1, "mean_loss": epoch_mean})
                break
            if stop:
                if main:
                    run.log({"event": "step_budget_reached", "epoch": epoch + 1, "step": step})
                break
    finally:
        bar.close()

    # the final model: gathered to rank 0 (full state dict under FSDP2 / ZeRO-3), LoRA folded into the weights
    acc.wait_for_everyone()
    state_dict = acc.get_state_dict(prepared)
    plain = acc.unwrap_model(prepared, keep_fp32_wrapper=False)  # no autocast patch left
    # unwrapping leaves an instance `forward` unwrapped past transformers' own decorators too (return_dict
    # handling breaks): drop it, so the class's forward is the model's again
    plain.__dict__.pop("forward", None)
    if config.lora_rank:
        from hyperfit_core.trainable import merged_state_dict

        if main:
            state_dict = merged_state_dict(state_dict, *lora_merge)
        if engine.strategy(acc) in ("single", "ddp"):
            plain = plain.merge_and_unload()  # the returned model is the plain, merged one
        else:
            plain = plain.get_base_model()
    for name, param in plain.named_parameters():
        param.requires_grad_(requires_grad_was.get(name, True))
    if input_grads:
        plain.disable_input_require_grads()
    if engine.is_checkpointing(plain) != checkpointing_was:
        engine.set_checkpointing(plain, checkpointing_was)  # training-only settings: hand the model back as it came
    plain.eval()
    if main:
        with atomic_dir(run / "model") as tmp:
            plain.save_pretrained(tmp, state_dict=state_dict)
            if save_extra is not None:
                save_extra(tmp)
        write_text(run / TRAIN_CONFIG, json.dumps(asdict(config), indent=2) + "\n")
        engine.write_loss_plot(run / METRICS, run / "loss.png")
    if config.report_to != "none":
        for tracker in acc.trackers:
            tracker.finish()
    acc.wait_for_everyone()
    return plain
