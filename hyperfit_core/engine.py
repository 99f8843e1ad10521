"""The pieces of `hyperfit` that talk to accelerate: one process, DDP, FSDP2 or DeepSpeed ZeRO from one code path.

The strategy comes from how the program is launched (`python`, `torchrun`, `accelerate launch --config_file
configs/accelerate/...`); nothing here needs to know which one beyond a few switches it reads off the Accelerator.
hyperfit_core/launch.py reads what the launcher asked for and makes sure that is what the Accelerator runs.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch

from hyperfit_core import launch
from hyperfit_core.device import free_memory, resolve_device
from hyperfit_core.errors import HyperfitError
from hyperfit_core.options import auto_precision


def split_bounds(count: int, parts: int, index: int) -> tuple[int, int]:
    """[lo, hi) of part `index` when `count` items are cut into `parts` contiguous pieces differing by at most 1."""
    base, extra = divmod(count, parts)
    lo = index * base + min(index, extra)
    return lo, lo + base + (1 if index < extra else 0)


def batch_layout(batch_size: int, per_device: int | None, processes: int) -> tuple[int, int]:
    """(per-device micro batch, accumulation steps) for a GLOBAL batch of `batch_size` on `processes` ranks."""
    if per_device is None:
        return max(1, -(-batch_size // processes)), 1
    if batch_size % (per_device * processes):
        raise HyperfitError(f"the global batch {batch_size} is not a multiple of per-device batch {per_device} x "
                            f"{processes} processes; choose sizes with batch = per-device x processes x accumulation")
    return per_device, batch_size // (per_device * processes)


def mixed_precision(config, cuda: bool) -> str:
    """accelerate's mixed_precision: bf16 autocast over fp32 (master) weights, or none. "auto" takes what
    `accelerate launch --config_file ...` asked for, else the one auto rule (hyperfit_core.options)."""
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if config.precision == "auto" and launched in ("no", "bf16"):
        return launched
    return "bf16" if auto_precision(config.precision, "cuda" if cuda else "cpu") == "bf16" else "no"


def process_state(device: str = "auto"):
    """accelerate's PartialState as `hyperfit()` will use it, joining the process group that torchrun /
    accelerate launch describe in the environment. Use this (not a bare `PartialState()`) before training, e.g.
    to broadcast the run dir: on a machine without CUDA a bare PartialState() does not join the group (gloo needs
    cpu=True), and every process would think it is rank 0."""
    from accelerate import PartialState

    return PartialState(cpu=resolve_device(device).type == "cpu")


_EARLY: dict = {}  # an Accelerator started before the model was loaded (start_early), waiting for hyperfit()


def _early_key(config, accumulation: int) -> tuple:
    return (accumulation, config.device, config.precision, config.report_to)


def start_early(config) -> None:
    """Optional, before loading the model: start accelerate (process group, launch-config plugins) now.

    Under DeepSpeed ZeRO-3 with `zero3_init_flag` this lets transformers' `from_pretrained` partition the weights
    while loading (zero.Init) instead of materialising the whole model in every process. `hyperfit()` then takes
    this Accelerator over (if the config still asks for the same layout, device, precision and tracker)."""
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    _, accumulation = batch_layout(config.batch_size, config.per_device_batch_size, processes)
    _EARLY.clear()
    _EARLY["accelerator"] = make_accelerator(config, None, accumulation)
    _EARLY["key"] = _early_key(config, accumulation)


def make_accelerator(config, run_path: Path | None, accumulation: int):
    """An Accelerator for this run. accelerate's state is process-wide: reset it so a second call in one
    process (tests, sweeps) starts clean; a distributed process group is kept."""
    if _EARLY and run_path is not None:
        early, key = _EARLY.pop("accelerator"), _EARLY.pop("key")
        if key == _early_key(config, accumulation):
            early.project_configuration.set_directories(str(run_path))
            return early
    import importlib.util

    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState, PartialState

    if config.report_to != "none" and importlib.util.find_spec(config.report_to) is None:
        raise HyperfitError(f"--report-to {config.report_to} needs the {config.report_to} package: "
                            f"pip install {config.report_to}")

    distributed = launch.world_size() > 1
    target = resolve_device(config.device)
    cpu = target.type == "cpu"
    wanted = launch.check_launch(cpu)
    # keep a process group that is up; a state made without one (alone, or a bare PartialState() on a CPU-only
    # machine under torchrun) is made again
    joined = bool(PartialState._shared_state) and PartialState().use_distributed
    AcceleratorState._reset_state(reset_partial_state=not (distributed and joined))
    GradientState._reset_state()
    launch.forget_cpu_switch()
    if target.index is not None and not distributed:
        torch.cuda.set_device(target)
    accelerator = Accelerator(cpu=cpu, mixed_precision=mixed_precision(config, not cpu),
                              gradient_accumulation_steps=accumulation,
                              log_with=None if config.report_to == "none" else config.report_to,
                              project_dir=None if run_path is None else str(run_path))
    if cpu and wanted in launch.SHARDED:
        launch.switch_on_cpu(accelerator, wanted)  # accelerate drops FSDP / DeepSpeed with cpu=True
    if wanted == "deepspeed":
        launch.deepspeed_fp32_master(accelerator)
    if strategy(accelerator) != wanted:
        raise HyperfitError(f"the launch asks for {wanted} but accelerate set up {strategy(accelerator)} "
                            f"on {accelerator.num_processes} process(es) on {accelerator.device}; hyperfit does not "
                            "train with another strategy than the one asked for")
    # ACCELERATE_GRADIENT_ACCUMULATION_STEPS (from a launch config) would override the argument: the loss weights
    # assume ours
    accelerator.gradient_accumulation_steps = accumulation
    return accelerator


def strategy(accelerator) -> str:
    """"single", "ddp", "fsdp2", "fsdp1" or "deepspeed"."""
    from accelerate.utils import DistributedType

    kind = accelerator.distributed_type
    if kind == DistributedType.FSDP:
        return "fsdp2" if accelerator.is_fsdp2 else "fsdp1"
    if kind == DistributedType.DEEPSPEED:
        return "deepspeed"
    return "ddp" if accelerator.num_processes > 1 else "single"


def compute_precision(accelerator) -> str:
    """"bf16" or "no": what the matmuls run in (under DeepSpeed its torch_autocast section, see launch.py)."""
    if strategy(accelerator) == "deepspeed":
        return launch.deepspeed_compute_dtype(accelerator)
    return accelerator.mixed_precision


def offloads_to_cpu(fsdp_plugin) -> bool:
    """Whether an FSDP plugin keeps parameters on the CPU. FSDP2's "no offload" is an `OffloadPolicy()` object
    (truthy), its offload a `CPUOffloadPolicy`; FSDP1's is `CPUOffload(offload_params=...)`."""
    offload = fsdp_plugin.cpu_offload
    if offload is None or isinstance(offload, bool):
        return bool(offload)
    from torch.distributed.fsdp import CPUOffloadPolicy

    return isinstance(offload, CPUOffloadPolicy) or bool(getattr(offload, "offload_params", False))


def describe(accelerator) -> dict:
    """What the run trains on, for metrics.jsonl: strategy, processes, device, precision and the sharding setup."""
    record = {"strategy": strategy(accelerator), "processes": accelerator.num_processes,
              "device": str(accelerator.device), "mixed_precision": compute_precision(accelerator)}
    if record["strategy"] == "fsdp2":
        plugin = accelerator.state.fsdp_plugin
        policy = plugin.mixed_precision_policy
        record["fsdp"] = {"param_dtype": str(getattr(policy, "param_dtype", None)),
                          "reduce_dtype": str(getattr(policy, "reduce_dtype", None)),
                          "cpu_offload": offloads_to_cpu(plugin), "state_dict": plugin.state_dict_type.name,
                          "activation_checkpointing": bool(plugin.activation_checkpointing)}
    elif record["strategy"] == "deepspeed":
        config = accelerator.state.deepspeed_plugin.deepspeed_config
        zero = config.get("zero_optimization", {})
        record["deepspeed"] = {"zero_stage": zero.get("stage"),
                               "offload_optimizer": zero.get("offload_optimizer", {}).get("device", "none"),
                               "bf16_weights": bool(config.get("bf16", {}).get("enabled", False)),
                               "torch_autocast": bool(config.get("torch_autocast", {}).get("enabled", False))}
    return record


def configure_plugins(accelerator, config, per_device: int, accumulation: int) -> None:
    """Settings the launch config can't express, applied before `prepare`.

    FSDP2: bf16 parameters for compute, fp32 gradient reduction (accelerate's default reduces in bf16).
    DeepSpeed: micro batch and accumulation from our layout, no clipping unless asked (its default is 1.0), and
    the weights gathered on save so the final model can be written (DeepSpeed's "16bit" switch gathers them as
    they are: fp32 under hyperfit's torch_autocast, launch.py).
    """
    kind = strategy(accelerator)
    if kind == "fsdp2" and compute_precision(accelerator) == "bf16":
        from torch.distributed.fsdp import MixedPrecisionPolicy

        accelerator.state.fsdp_plugin.mixed_precision_policy = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16, reduce_dtype=torch.float32, output_dtype=torch.bfloat16)
    if kind == "deepspeed":
        ds = accelerator.state.deepspeed_plugin.deepspeed_config
        ds["train_micro_batch_size_per_gpu"] = per_device
        ds["gradient_accumulation_steps"] = accumulation
        ds["train_batch_size"] = per_device * accumulation * accelerator.num_processes
        ds["gradient_clipping"] = float(config.grad_clip or 0.0)
        ds.setdefault("zero_optimization", {})["stage3_gather_16bit_weights_on_model_save"] = True


def build_optimizer(accelerator, params, config) -> torch.optim.Optimizer:
    """Adam (not AdamW: the paper's weight decay is 0 and coupled if set). Under DeepSpeed with the optimizer
    offloaded to CPU, DeepSpeed's CPU Adam (adamw_mode=False is the same update) does the step."""
    params = list(params)
    if strategy(accelerator) == "deepspeed":
        zero = accelerator.state.deepspeed_plugin.deepspeed_config.get("zero_optimization", {})
        if zero.get("offload_optimizer", {}).get("device", "none") in ("cpu", "nvme"):
            from deepspeed.ops.adam import DeepSpeedCPUAdam

            return DeepSpeedCPUAdam(params, lr=config.lr, weight_decay=config.weight_decay, adamw_mode=False)
    fused = accelerator.device.type == "cuda" and strategy(accelerator) in ("single", "ddp")
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)


def register_portable_weights(accelerator) -> None:
    """Plain-DDP checkpoints hold the unwrapped model's weights, so a run saved on N processes resumes on any
    other count (accelerate would save DDP's `module.`-prefixed keys, readable only by DDP)."""
    if strategy(accelerator) != "ddp":
        return
    from safetensors.torch import load_model

    def save_hook(models, weights, output_dir):
        for i, state in enumerate(weights):
            # an OrderedDict, as state_dict() gives: accelerate drops tied duplicates only from those
            weights[i] = OrderedDict((k.removeprefix("module."), v) for k, v in state.items())

    def load_hook(models, input_dir):
        device = "cpu" if accelerator.device.type == "cpu" else str(accelerator.device)  # safetensors rejects cpu:0
        for i, model in enumerate(models):
            name = "model.safetensors" if i == 0 else f"model_{i}.safetensors"
            load_model(accelerator.unwrap_model(model), os.path.join(input_dir, name), device=device)
        models.clear()

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def want_compile(config, accelerator) -> bool:
    """"auto": on CUDA with one process or DDP (compiling FSDP2 / DeepSpeed models is left to "on")."""
    if config.compile == "auto":
        return accelerator.device.type == "cuda" and strategy(accelerator) in ("single", "ddp")
    return config.compile == "on"


def fsdp_checkpoints_activations(accelerator) -> bool:
    plugin = getattr(accelerator.state, "fsdp_plugin", None)
    return bool(plugin is not None and getattr(plugin, "activation_checkpointing", False))


def want_checkpointing(config, accelerator, model, micro_batch: int, seq_len: int) -> bool:
    """"auto": on CUDA only, when the activations of one micro batch would not fit next to the training state."""
    if config.gradient_checkpointing in ("on", "off"):
        return config.gradient_checkpointing == "on"
    if accelerator.device.type != "cuda" or fsdp_checkpoints_activations(accelerator):
        return False
    from hyperfit_core.plan import activation_bytes

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    shards = accelerator.num_processes if strategy(accelerator) in ("fsdp2", "fsdp1", "deepspeed") else 1
    free = free_memory(accelerator.device)
    states = trainable * (4 + 8) / shards  # fp32 gradients + Adam moments, not allocated yet
    needed = activation_bytes(model.config, micro_batch, seq_len, bf16=compute_precision(accelerator) == "bf16")
    return needed + states > 0.9 * free
