"""configs/accelerate/*.yaml parse into accelerate's config classes and turn into the plugins we rely on.

Each file goes through what `accelerate launch --config_file FILE` does before starting processes (argument
validation, the environment it hands the workers), and the FSDP / DeepSpeed plugin is then built from that
environment, as the Accelerator in each worker builds it."""

import gc
import os
from pathlib import Path
from unittest import mock

import pytest
from accelerate.commands.config import load_config_from_file
from accelerate.utils import DeepSpeedPlugin, DistributedType, FullyShardedDataParallelPlugin

from hyperfit_core.engine import offloads_to_cpu
from tests.distributed.common import DEFAULT_PORT, default_port_busy, launcher_env

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"
EXPECTED = {"single_gpu": (DistributedType.NO, 1), "fsdp2_8gpu": (DistributedType.FSDP, 8),
            "fsdp2_8gpu_offload": (DistributedType.FSDP, 8), "multinode_fsdp2": (DistributedType.FSDP, 32),
            "deepspeed_zero3_offload": (DistributedType.DEEPSPEED, 8)}


def test_every_shipped_config_is_tested():
    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_parses_and_launches_bf16(name):
    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert (config.distributed_type, config.num_processes) == EXPECTED[name]
    assert config.mixed_precision == "bf16" and not config.use_cpu
    assert launcher_env(CONFIGS / f"{name}.yaml")["ACCELERATE_MIXED_PRECISION"] == "bf16"


@pytest.mark.parametrize("name, offload", [("fsdp2_8gpu", False), ("fsdp2_8gpu_offload", True),
                                           ("multinode_fsdp2", False)])
def test_fsdp_configs_give_fsdp2_full_shard_with_activation_checkpointing(name, offload):
    from torch.distributed.fsdp import CPUOffloadPolicy

    with mock.patch.dict(os.environ, launcher_env(CONFIGS / f"{name}.yaml")):
        plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.activation_checkpointing and plugin.cpu_ram_efficient_loading
    assert plugin.state_dict_type.name == "SHARDED_STATE_DICT"  # resumable on another process count
    assert isinstance(plugin.cpu_offload, CPUOffloadPolicy) == offload
    # what the run records: accelerate's "no offload" is an OffloadPolicy() object, which is truthy
    assert offloads_to_cpu(plugin) is offload


def test_deepspeed_config_gives_zero3_with_optimizer_offload():
    env = launcher_env(CONFIGS / "deepspeed_zero3_offload.yaml")
    assert "ACCELERATE_GRADIENT_ACCUMULATION_STEPS" not in env  # hyperfit sets it from the batch layout
    with mock.patch.dict(os.environ, env):
        plugin = DeepSpeedPlugin()
    zero = plugin.deepspeed_config["zero_optimization"]
    assert plugin.zero_stage == 3 and zero["offload_optimizer"]["device"] == "cpu"
    assert zero["stage3_gather_16bit_weights_on_model_save"] and plugin.zero3_init_flag
    assert plugin.deepspeed_config.get("gradient_clipping", 0.0) == 0.0
    del plugin  # its HfDeepSpeedConfig is a weak global transformers reads: leave no ZeRO-3 switch behind
    gc.collect()


def test_multinode_config_names_its_machines():
    config = load_config_from_file(str(CONFIGS / "multinode_fsdp2.yaml"))
    assert config.num_machines == 4 and config.main_process_port == 29500


def test_launch_settings_do_not_need_the_default_port_free():
    """Another job (or a second test run) on the machine may hold 29500, the port the multi-node file names."""
    import socket

    with default_port_busy():
        with socket.socket() as probe:  # the port is really taken while the launcher code runs
            assert probe.connect_ex(("127.0.0.1", DEFAULT_PORT)) == 0
        for name in sorted(EXPECTED):
            assert launcher_env(CONFIGS / f"{name}.yaml")["ACCELERATE_MIXED_PRECISION"] == "bf16"
