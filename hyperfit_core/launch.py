"""What the launcher asked for, and making sure that is what trains.

`accelerate launch --config_file configs/accelerate/X.yaml` hands its worker processes the strategy in their
environment (ACCELERATE_USE_FSDP / ACCELERATE_USE_DEEPSPEED and the plugin settings). accelerate switches FSDP and
DeepSpeed on only on an accelerator: `Accelerator(cpu=True)`, how hyperfit trains on a machine without a GPU, would
quietly run DDP instead. hyperfit switches them on by hand there (fully_shard and DeepSpeed both run over gloo on
CPU processes; DeepSpeed with its CPU accelerator), refuses before anything is written a launch it cannot honour,
and checks that the Accelerator it made runs the strategy that was asked for.

DeepSpeed's own bf16 mode keeps bf16 weights (cast from the checkpoint when the engine starts, or when zero.Init
partitions them) with an fp32 master copy made from those rounded values, and saves the model in bf16: an Adam step
at the paper's lr 1e-6 is ~60x smaller than that rounding. hyperfit runs DeepSpeed with its `torch_autocast`
section instead: fp32 weights (the checkpoint's values) and fp32 gradient reduction, bf16 matmuls, the model saved
in fp32, as under FSDP2 and DDP.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import sys

from hyperfit_core.errors import HyperfitError

SHARDED = ("fsdp2", "fsdp1", "deepspeed")
_NOT_RUN = {"ACCELERATE_USE_MEGATRON_LM": "Megatron-LM", "ACCELERATE_USE_SAGEMAKER": "SageMaker"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() == "true"


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def leave_process_group() -> None:
    """Destroy the process group this process joined (torchrun / accelerate launch), if any. Registered to run at
    exit: a process that leaves without it can die of SIGABRT after its work is done (gloo's worker threads still
    hold tensors that, freed during interpreter finalisation, take a GIL that is gone; pytorch#179291), and the
    launcher then reports a finished command as failed. A no-op alone and when the group is gone already."""
    if "torch.distributed" not in sys.modules:  # nothing joined a group: no reason to import it at exit
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


atexit.register(leave_process_group)  # every command that may join a group imports this module first


def requested_strategy() -> str:
    """"deepspeed", "fsdp2" / "fsdp1" (from accelerate launch's environment), "ddp" (several processes) or
    "single": the strategy named the way `engine.strategy` names what an Accelerator runs."""
    if _flag("ACCELERATE_USE_DEEPSPEED"):
        return "deepspeed"
    if _flag("ACCELERATE_USE_FSDP"):
        return "fsdp2" if os.environ.get("FSDP_VERSION", "1") == "2" else "fsdp1"
    return "ddp" if world_size() > 1 else "single"


def check_launch(cpu: bool) -> str:
    """The requested strategy, or one clear error if this machine can't run it (call before anything is written).
    On CPU it also points DeepSpeed at its CPU accelerator, which must happen before deepspeed is imported."""
    for flag, name in _NOT_RUN.items():
        if _flag(flag):
            raise HyperfitError(f"the launch asks for {name}, which hyperfit does not run: launch with a DDP, "
                                "FSDP2 or DeepSpeed config (configs/accelerate/)")
    wanted = requested_strategy()
    if wanted not in SHARDED:
        return wanted
    if wanted == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise HyperfitError("the launch config asks for DeepSpeed, which is not installed: "
                            "pip install 'hyperfit[deepspeed]' (or launch with configs/accelerate/fsdp2_8gpu*.yaml)")
    if cpu and "LOCAL_RANK" not in os.environ:
        # accelerate forms a CPU process group only for a launched process (LOCAL_RANK set)
        raise HyperfitError(f"{wanted} needs a process group: start hyperfit with accelerate launch or torchrun")
    if wanted == "deepspeed" and cpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        from deepspeed.accelerator import get_accelerator

        if get_accelerator().device_name() != "cpu":
            raise HyperfitError(f"hyperfit trains on CPU but DeepSpeed is set up for {get_accelerator().device_name()}"
                                " (DS_ACCELERATOR): unset it or set it to cpu")
    return wanted


def switch_on_cpu(accelerator, wanted: str) -> None:
    """Make an Accelerator built with cpu=True run FSDP or DeepSpeed, as accelerate would on an accelerator: the
    plugin built from the launcher's environment and the distributed type set. Everything after this (fully_shard
    or deepspeed.initialize over gloo, their checkpoints and gathered state dicts) is accelerate's own code."""
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DeepSpeedPlugin, DistributedType, FullyShardedDataParallelPlugin

    kind = DistributedType.DEEPSPEED if wanted == "deepspeed" else DistributedType.FSDP
    for shared in (PartialState._shared_state, AcceleratorState._shared_state):
        shared["distributed_type"] = kind
    state = accelerator.state
    if wanted == "deepspeed":
        plugin = DeepSpeedPlugin()
        plugin.set_mixed_precision(state._mixed_precision)
        state.deepspeed_plugins = plugin
        plugin.select(_from_accelerator_state=True)
        accelerator.native_amp = False  # DeepSpeed autocasts inside its engine
        accelerator.deepspeed_engine_wrapped = None
    else:
        plugin = FullyShardedDataParallelPlugin()
        if state._mixed_precision != "no":
            plugin.set_mixed_precision(state._mixed_precision)
        state.fsdp_plugin = plugin


def forget_cpu_switch() -> None:
    """A process group kept from an earlier run in this process (tests, sweeps) says CPU again, so the next
    Accelerator starts from what accelerate itself would have set up."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    if PartialState._shared_state.get("distributed_type") in (DistributedType.FSDP, DistributedType.DEEPSPEED) \
            and PartialState._shared_state.get("backend") == "gloo":
        PartialState._shared_state["distributed_type"] = DistributedType.MULTI_CPU


def deepspeed_fp32_master(accelerator) -> None:
    """DeepSpeed with fp32 weights from the checkpoint and bf16 compute (module docstring): its bf16 section is
    swapped for torch_autocast, with every collective in fp32 (no lower-precision modules). Done before the model
    is loaded, and transformers' copy of the config (read by zero.Init while loading) is made again from it."""
    plugin = accelerator.state.deepspeed_plugin
    config = plugin.deepspeed_config
    if str(config.get("fp16", {}).get("enabled", False)).lower() == "true":
        raise HyperfitError("the DeepSpeed config enables fp16, which hyperfit does not train in (an lr-1e-6 Adam "
                            "step is lost in 16-bit weights): use mixed_precision bf16 or no")
    bf16 = str(config.get("bf16", {}).get("enabled", False)).lower() == "true" \
        or config.get("torch_autocast", {}).get("enabled", False)
    config["bf16"] = {"enabled": False}
    config["fp16"] = {"enabled": False}
    config["torch_autocast"] = {"enabled": bf16, "dtype": "bfloat16", "lower_precision_safe_modules": []}
    plugin.set_deepspeed_weakref()


def deepspeed_compute_dtype(accelerator) -> str:
    """"bf16" or "no": what DeepSpeed computes in (accelerate reads only the bf16 section, which hyperfit turns off)."""
    config = accelerator.state.deepspeed_plugin.deepspeed_config
    return "bf16" if config.get("torch_autocast", {}).get("enabled", False) else accelerator.mixed_precision
