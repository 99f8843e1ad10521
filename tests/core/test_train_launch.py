"""A launch config that cannot take effect is refused in one line before anything is written, never dropped to
DDP silently (on CPU, accelerate's cpu=True would drop FSDP and DeepSpeed; hyperfit_core/launch.py switches them on,
which tests/distributed runs on two processes)."""

import importlib.util

import pytest

from hyperfit_core import launch
from hyperfit_core.errors import HyperfitError
from hyperfit_core.recipe import TrainSpec, train_run
from hyperfit_core.train import TrainConfig

LAUNCH_VARIABLES = ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_MEGATRON_LM", "FSDP_VERSION",
                    "WORLD_SIZE", "LOCAL_RANK")


class NeverPrepared:
    """A modality whose data must never be touched: the launch is refused first."""

    name = "never"

    def prepare(self, spec):
        raise AssertionError("the run was prepared although its launch could not be honoured")

    def reload(self, spec, run):
        raise AssertionError("reloaded")


@pytest.fixture
def plain_environment(monkeypatch):
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _refused(tmp_path, match: str):
    spec = TrainSpec(model="unused", data={}, train=TrainConfig(device="cpu", progress=False))
    with pytest.raises(HyperfitError, match=match) as refusal:
        train_run(spec, NeverPrepared(), tmp_path / "runs")
    assert len(str(refusal.value).splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_the_requested_strategy_is_read_from_the_launchers_environment(plain_environment):
    assert launch.requested_strategy() == "single"
    plain_environment.setenv("WORLD_SIZE", "2")
    assert launch.requested_strategy() == "ddp"
    plain_environment.setenv("ACCELERATE_USE_FSDP", "true")
    assert launch.requested_strategy() == "fsdp1"  # accelerate's default FSDP version
    plain_environment.setenv("FSDP_VERSION", "2")
    assert launch.requested_strategy() == "fsdp2"
    plain_environment.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    assert launch.requested_strategy() == "deepspeed"


def test_fsdp_without_a_process_group_on_cpu_is_refused_not_run_as_one_process(plain_environment, tmp_path):
    plain_environment.setenv("ACCELERATE_USE_FSDP", "true")
    plain_environment.setenv("FSDP_VERSION", "2")
    _refused(tmp_path, "fsdp2 needs a process group: start hyperfit with accelerate launch or torchrun")


def test_deepspeed_asked_for_but_not_installed_is_refused(plain_environment, tmp_path):
    plain_environment.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    plain_environment.setenv("LOCAL_RANK", "0")
    find_spec = importlib.util.find_spec
    plain_environment.setattr(importlib.util, "find_spec",
                              lambda name, *a: None if name == "deepspeed" else find_spec(name, *a))
    _refused(tmp_path, r"asks for DeepSpeed, which is not installed: pip install 'hyperfit\[deepspeed\]'")


def test_a_strategy_hyperfit_does_not_run_is_refused(plain_environment, tmp_path):
    plain_environment.setenv("ACCELERATE_USE_MEGATRON_LM", "true")
    _refused(tmp_path, "asks for Megatron-LM, which hyperfit does not run")
