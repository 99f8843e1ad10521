"""Free device memory, computed once (hyperfit_core.device.free_memory) for the decoder's auto batch size and
training's auto activation checkpointing."""

from types import SimpleNamespace

import pytest
import torch
from accelerate.utils import DistributedType
from transformers import GPT2Config

from hyperfit_core import engine
from hyperfit_core.device import free_memory
from hyperfit_core.plan import activation_bytes
from hyperfit_core.train import TrainConfig

GIB = 2**30


@pytest.fixture
def fake_cuda(monkeypatch):
    """A CUDA card whose driver and caching allocator report what the test sets."""
    state = {"free": 10 * GIB, "reserved": 0, "allocated": 0}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (state["free"], 80 * GIB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: state["reserved"])
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: state["allocated"])
    return state


def test_cuda_free_memory_counts_what_the_caching_allocator_holds(fake_cuda):
    cuda = torch.device("cuda")
    first = free_memory(cuda)
    # a first engine's 6 GiB buffer, freed: PyTorch keeps it reserved, so the driver reports 4 GiB free
    fake_cuda.update(free=4 * GIB, reserved=6 * GIB, allocated=0)
    assert free_memory(cuda) == first == 10 * GIB
    fake_cuda.update(allocated=2 * GIB)  # of which 2 GiB are really in use
    assert free_memory(cuda) == 8 * GIB
    assert free_memory("cuda") == 8 * GIB


def test_cpu_free_memory_is_what_the_kernel_says_is_available():
    assert 0 < free_memory(torch.device("cpu")) <= 2**50
    assert free_memory(torch.device("meta")) is None


def test_auto_checkpointing_counts_the_allocators_cache_as_free(fake_cuda):
    config = GPT2Config(vocab_size=50, n_positions=64, n_embd=32, n_layer=2, n_head=2)
    model = SimpleNamespace(config=config, parameters=lambda: iter(()))
    accelerator = SimpleNamespace(device=torch.device("cuda"), distributed_type=DistributedType.NO,
                                  num_processes=1, is_fsdp2=False, state=SimpleNamespace(), mixed_precision="bf16")
    needed = activation_bytes(config, 8, 64, bf16=True)
    fake_cuda.update(free=int(needed / 0.9) + 1024)
    assert not engine.want_checkpointing(TrainConfig(), accelerator, model, 8, 64)
    # the same memory, most of it cached by PyTorch after an earlier model: still enough
    fake_cuda.update(free=1024, reserved=int(needed / 0.9), allocated=0)
    assert not engine.want_checkpointing(TrainConfig(), accelerator, model, 8, 64)
    fake_cuda.update(allocated=int(needed / 0.9))  # now really in use: checkpoint
    assert engine.want_checkpointing(TrainConfig(), accelerator, model, 8, 64)
