"""The hyperfitting loop, top to bottom: next-token loss, Adam with a tiny learning rate, many epochs.

Shaped as torchtune's recipes are: `setup` (what trains, accelerate's prepare, where a resume stands), the loop
itself in `hyperfit` (one screen, a comment per phase, as nanoGPT's train.py), and `finalize` (gather, merge LoRA,
unwrap, save, hand the model back as it came). The settings are TrainConfig (train_config.py); what talks to
accelerate is engine.py.

The trainer knows nothing of the model beyond "it maps input_ids to logits"; adapters decide what a
sequence is (ImageGPT: [SOS, p0..p1023]; text: [BOS, t1..t256]). accelerate runs it: the same code trains on one
CPU or GPU, under `torchrun` / `accelerate launch` with DDP, FSDP2 or DeepSpeed ZeRO (docs/scale.md).
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
from tqdm.auto import tqdm

from hyperfit_core import engine, launch, trainable
from hyperfit_core.atomic import atomic_dir, write_text
from hyperfit_core.checkpoint import load_checkpoint, save_checkpoint
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import METRICS, TRAIN_CONFIG
from hyperfit_core.plots import write_loss_plot
from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences, epoch_order
from hyperfit_core.train_config import LR_SCHEDULES, TrainConfig  # noqa: F401  (the Python API's home of both)


def next_token_loss(model, ids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting ids[:, 1:] from ids[:, :-1].

    The first token (SOS/BOS) is input only, so a 1025-token ImageGPT sequence uses 1024 positions and all
    1024 pixels are scored; logits may have fewer classes than the input vocabulary (ImageGPT: 512 vs 513).
    """
    logits = model(input_ids=ids[:, :-1]).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


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
    t = setup(model, data, config, run, resume)
    acc, optimizer, at, main = t.accelerator, t.optimizer, t.at, t.accelerator.is_main_process
    n, batch, total_steps = len(data), config.batch_size, config.planned_steps(len(data))
    tracking = config.report_to != "none"
    stop = config.max_steps is not None and at.step >= config.max_steps  # a resumed run whose budget is spent
    bar = tqdm(total=total_steps, initial=at.step, disable=not (config.progress and main), desc="hyperfit", unit="step")
    try:
        while at.epoch < config.epochs and not stop:
            epoch = at.epoch
            # this epoch's order of the samples: seeded by the epoch, the same on every rank and process count
            order = epoch_order(n, config.resolved_order_seed(), epoch, swaps=config.shuffle_swaps)
            started = time.time()
            for first in range(at.sample_in_epoch, n, batch):
                rows = order[first:first + batch]
                mine = rows[slice(*engine.split_bounds(len(rows), acc.num_processes, acc.process_index))]
                # the learning rate of this step, set before backward: DeepSpeed steps inside the last backward
                lr = config.lr_at(at.step, total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                # forward and backward, micro batch by micro batch of this rank's contiguous slice
                loss_sum = torch.zeros((), dtype=torch.float64, device=acc.device)
                for micro in range(t.accumulation):
                    part = mine[slice(*engine.split_bounds(len(mine), t.accumulation, micro))]
                    # a rank without samples in a short last batch still joins the collectives, with weight 0
                    ids = data.ids[part if len(part) else rows[:1]].to(acc.device, non_blocking=True)
                    with acc.accumulate(t.prepared):
                        loss = loss_fn(t.train_model, ids)
                        # gradients are averaged over ranks and divided by the accumulation steps: this weight
                        # makes them the mean over the batch's true sample count
                        weight = len(part) * acc.num_processes * t.accumulation / len(rows)
                        acc.backward(loss if weight == 1 else loss * weight)
                    loss_sum += loss.detach().double() * len(part)
                # the batch's mean loss over every rank; a diverged run stops here, before anything is saved
                value = _batch_loss(acc, loss, loss_sum, t.accumulation, len(rows))
                if not math.isfinite(value):
                    raise HyperfitError(f"training loss became {value} at epoch {epoch + 1}, step {at.step + 1}; "
                                        "lower the learning rate or check the data")
                # clip (if asked), step, clear the gradients
                if config.grad_clip and acc.sync_gradients:
                    acc.clip_grad_norm_(t.prepared.parameters(), config.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                at.advance(value, len(rows))
                # log the step
                if main:
                    run.log({"event": "step", "epoch": epoch + 1, "step": at.step, "loss": value, "lr": lr})
                    bar.set_postfix(epoch=epoch + 1, loss=f"{value:.4f}")
                    bar.update(1)
                if tracking:
                    acc.log({"loss": value, "epoch": epoch + 1}, step=at.step)
                # the step budget can end a run inside an epoch
                if config.max_steps is not None and at.step >= config.max_steps:
                    stop = True
                    break
            # the epoch's mean loss (of the part that ran, when a budget stopped it)
            epoch_done = at.sample_in_epoch >= n
            epoch_mean = at.epoch_loss_sum / max(at.epoch_seen, 1)
            if main:
                run.log({"event": "epoch", "epoch": epoch + 1, "step": at.step, "mean_loss": epoch_mean,
                         "seconds": time.time() - started, **({} if epoch_done else {"partial": at.epoch_seen})})
            if tracking:
                acc.log({"epoch_mean_loss": epoch_mean}, step=at.step)
            # checkpoint: every save_every epochs and at the end; a stop inside an epoch resumes at the next batch
            reached = config.target_loss is not None and epoch_done and epoch_mean < config.target_loss
            if epoch_done:
                at.next_epoch()
                if at.epoch % config.save_every == 0 or at.epoch == config.epochs or stop or reached:
                    t.checkpoint(run, config, n)
            else:
                t.checkpoint(run, config, n)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, epoch_mean)
            # the loss target ends the run after a whole epoch below it
            if reached:
                if main:
                    run.log({"event": "target_reached", "epoch": epoch + 1, "mean_loss": epoch_mean})
                break
            if stop and main:
                run.log({"event": "step_budget_reached", "epoch": epoch + 1, "step": at.step})
    finally:
        bar.close()
    return finalize(t, config, run, save_extra)


def _batch_loss(acc, loss: torch.Tensor, loss_sum: torch.Tensor, accumulation: int, count: int) -> float:
    """The batch's mean loss: reduced over the ranks, or this process's own (its last micro batch's loss when
    there was only one)."""
    if acc.num_processes > 1:
        return (acc.reduce(loss_sum, "sum") / count).item()
    return loss.item() if accumulation == 1 else loss_sum.item() / count


@dataclass
class Position:
    """Where the loop stands: the next step starts at `sample_in_epoch` of `epoch` (0-based) after `step` steps.
    Saved in every checkpoint's state.json (with the batch layout) and read back on resume."""

    epoch: int = 0
    sample_in_epoch: int = 0
    step: int = 0
    epoch_loss_sum: float = 0.0  # of the epoch so far, for its mean
    epoch_seen: int = 0

    def advance(self, loss: float, samples: int) -> None:
        self.step += 1
        self.sample_in_epoch += samples
        self.epoch_loss_sum += loss * samples
        self.epoch_seen += samples

    def next_epoch(self) -> None:
        self.epoch, self.sample_in_epoch, self.epoch_loss_sum, self.epoch_seen = self.epoch + 1, 0, 0.0, 0


@dataclass
class Training:
    """What `setup` hands the loop and `finalize`."""

    accelerator: object
    prepared: torch.nn.Module  # as accelerate wrapped it (DDP / FSDP2 / DeepSpeed engine)
    train_model: torch.nn.Module  # `prepared`, or its torch.compile'd twin: only the loss goes through it
    optimizer: torch.optim.Optimizer
    accumulation: int
    at: Position
    came: trainable.AsItCame  # the model's training-only settings, restored by finalize

    def checkpoint(self, run: RunDir, config: TrainConfig, samples: int) -> None:
        save_checkpoint(self.accelerator, run.path, {
            **asdict(self.at), "batch_size": config.batch_size, "samples": samples,
            "processes": self.accelerator.num_processes, "strategy": engine.strategy(self.accelerator),
            "epochs_done": self.at.epoch}, keep=config.keep_checkpoints)


def setup(model, data: TokenSequences, config: TrainConfig, run: RunDir, resume: bool) -> Training:
    """Everything before the first step: the batch layout, the Accelerator, what trains, prepare, where a resume
    stands (its checkpoint loaded), and the engine record in metrics.jsonl."""
    from accelerate.utils import set_seed

    config.validate()
    per_device, accumulation = engine.batch_layout(config.batch_size, config.per_device_batch_size,
                                                   launch.world_size())
    acc = engine.make_accelerator(config, run.path, accumulation)
    set_seed(config.seed)
    # what trains: everything, the last K blocks (+ final norm and head), or LoRA adapters
    came = trainable.as_it_came(model)
    if config.disable_dropout:
        trainable.disable_dropout(model)
    trained, came.lora_merge = trainable.select_trained(model, config.train_layers, config.lora_rank)
    # activation checkpointing when asked for, or (auto) when the activations would not fit
    checkpointing = engine.want_checkpointing(config, acc, model, per_device, data.length - 1)
    if checkpointing != came.checkpointing:
        trainable.set_checkpointing(model, checkpointing)
    if checkpointing and (config.train_layers or config.lora_rank):
        came.input_grads = True
        model.enable_input_require_grads()  # frozen embeddings: recomputed blocks still need an input grad
    trained.train()
    # accelerate's prepare: wrapped for the strategy, the optimizer over the trained parameters
    engine.configure_plugins(acc, config, per_device, accumulation)
    optimizer = engine.build_optimizer(acc, (p for p in trained.parameters() if p.requires_grad), config)
    engine.register_portable_weights(acc)
    prepared, optimizer = acc.prepare(trained, optimizer)
    if config.report_to != "none":
        acc.init_trackers("hyperfit", config={k: v for k, v in asdict(config).items()
                                              if isinstance(v, (int, float, str, bool))})
    at = _resume(acc, run, config, len(data)) if resume else Position()
    # the compiled wrapper shares the model's parameters; only the loss goes through it, so the model that is
    # saved and returned (and later used for decoding) is the plain one
    train_model = torch.compile(prepared) if engine.want_compile(config, acc) else prepared
    if acc.is_main_process:
        run.log({"event": "engine", **engine.describe(acc), "per_device_batch": per_device,
                 "accumulation": accumulation, "gradient_checkpointing": checkpointing,
                 "compile": train_model is not prepared, "resumed_at_step": at.step if resume else None})
    return Training(acc, prepared, train_model, optimizer, accumulation, at, came)


def _resume(acc, run: RunDir, config: TrainConfig, samples: int) -> Position:
    """The newest checkpoint loaded into the prepared model and optimizer; where its loop stood."""
    state = load_checkpoint(acc, run.path)
    if state["batch_size"] != config.batch_size or state["samples"] != samples:
        raise HyperfitError(f"the checkpoint was written with batch {state['batch_size']} on {state['samples']} "
                            f"sequences; this run has batch {config.batch_size} on {samples}")
    return Position(state["epoch"], state["sample_in_epoch"], state["step"], state["epoch_loss_sum"],
                    state["epoch_seen"])


def finalize(t: Training, config: TrainConfig, run: RunDir, save_extra: Callable[[Path], None] | None):
    """The trained model gathered, LoRA merged, unwrapped, saved (rank 0) and handed back as it came."""
    acc, main = t.accelerator, t.accelerator.is_main_process
    # gather: the full state dict on rank 0 (under FSDP2 / ZeRO-3 the shards are collected)
    acc.wait_for_everyone()
    state_dict = acc.get_state_dict(t.prepared)
    # unwrap: no strategy wrapper and no autocast patch left
    plain = acc.unwrap_model(t.prepared, keep_fp32_wrapper=False)
    # unwrapping leaves an instance `forward` unwrapped past transformers' own decorators too (return_dict
    # handling breaks): drop it, so the class's forward is the model's again
    plain.__dict__.pop("forward", None)
    # merge LoRA: folded into the saved weights; the returned model is the plain, merged one where it can be
    if t.came.lora_merge is not None:
        if main:
            state_dict = trainable.merged_state_dict(state_dict, *t.came.lora_merge)
        plain = plain.merge_and_unload() if engine.strategy(acc) in ("single", "ddp") else plain.get_base_model()
    # hand back as it came: requires_grad, input grads and checkpointing were training-only settings
    trainable.hand_back(plain, t.came)
    plain.eval()
    # save: the model (plus the adapter's extras), the config, the loss plot
    if main:
        with atomic_dir(run / "model") as tmp:
            plain.save_pretrained(tmp, state_dict=state_dict)
            if save_extra is not None:
                save_extra(tmp)
        write_text(run / TRAIN_CONFIG, json.dumps(asdict(config), indent=2) + "\n")
        write_loss_plot(run / METRICS, run / "loss.png")
    if config.report_to != "none":
        for tracker in acc.trackers:
            tracker.finish()
    acc.wait_for_everyone()
    return plain
