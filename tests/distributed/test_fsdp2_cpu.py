"""FSDP2 (torch fully_shard through accelerate, configs/accelerate/fsdp2_8gpu.yaml's settings: full shard per
block, activation checkpointing, sharded checkpoints, rank-0 loading) on two CPU processes over gloo, against one
process. accelerate enables FSDP only on accelerators; hyperfit's engine switches it on for CPU processes
(hyperfit_core/launch.py); fp32 here, so the tolerances are DDP's (conftest: 1e-6 at lr 1e-4)."""

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from hyperfit_core.checkpoint import latest_checkpoint
from hyperfit_core.rundir import RunDir
from hyperfit_core.train import TrainConfig, hyperfit
from tests.distributed.common import make_data
from tests.distributed.conftest import CONFIG, LAST, LORA, TOL, N


def _weights(run_dir) -> dict:
    weights = load_file(str(run_dir / "model" / "model.safetensors"))
    weights.pop("lm_head.weight", None)  # tied to the input embeddings: written by some paths, not by others
    return weights


def _one_process(tiny_gpt2_dir, run_dir, config) -> dict:
    hyperfit(AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir), make_data(N),
             TrainConfig(**{**config, "per_device_batch_size": None}), RunDir(run_dir))
    return _weights(run_dir)


def _assert_close(a: dict, b: dict, tol: float):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=tol, rtol=0), (name, (a[name] - b[name]).abs().max())


def test_fsdp2_trains_the_same_weights_as_one_process(two_process_runs, tiny_gpt2_dir, tmp_path):
    engine = RunDir(two_process_runs / "fsdp-unbroken").read_metrics()[0]
    assert engine["strategy"] == "fsdp2" and engine["processes"] == 2 and engine["accumulation"] == 2
    assert engine["fsdp"]["state_dict"] == "SHARDED_STATE_DICT" and engine["fsdp"]["activation_checkpointing"]
    assert engine["fsdp"]["cpu_offload"] is False  # fsdp2_8gpu.yaml does not offload
    fsdp = _weights(two_process_runs / "fsdp-unbroken")
    assert all(w.dtype == torch.float32 for w in fsdp.values())  # gathered full weights, a plain model
    _assert_close(fsdp, _one_process(tiny_gpt2_dir, tmp_path / "one", CONFIG), TOL)
    reloaded = AutoModelForCausalLM.from_pretrained(two_process_runs / "fsdp-unbroken" / "model")
    assert torch.equal(reloaded.transformer.h[1].mlp.c_fc.weight, fsdp["transformer.h.1.mlp.c_fc.weight"])


def test_fsdp2_sharded_checkpoint_resumes_mid_epoch_exactly(two_process_runs):
    checkpoint = latest_checkpoint(two_process_runs / "fsdp-broken")
    assert (checkpoint / "pytorch_model_fsdp_0").is_dir()  # torch.distributed.checkpoint shards, one per rank
    _assert_close(_weights(two_process_runs / "fsdp-broken"), _weights(two_process_runs / "fsdp-unbroken"), 0.0)


def test_fsdp2_lora_merges_adapters_gathered_from_shards(two_process_runs, tiny_gpt2_dir, tmp_path):
    fsdp = _weights(two_process_runs / "fsdp-lora")
    assert not any("lora" in name for name in fsdp)
    _assert_close(fsdp, _one_process(tiny_gpt2_dir, tmp_path / "one", LORA), TOL)


def test_fsdp2_last_k_matches_one_process(two_process_runs, tiny_gpt2_dir, tmp_path):
    fsdp = _weights(two_process_runs / "fsdp-last")
    one = _one_process(tiny_gpt2_dir, tmp_path / "one", LAST)
    _assert_close(fsdp, one, TOL)
    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).state_dict()
    assert torch.equal(fsdp["transformer.h.0.attn.c_attn.weight"], base["transformer.h.0.attn.c_attn.weight"])


def test_fsdp2_bf16_compute_keeps_fp32_master_weights_that_an_lr_1e6_step_changes(two_process_runs, tiny_gpt2_dir):
    engine = RunDir(two_process_runs / "fsdp-bf16").read_metrics()[0]
    assert engine["mixed_precision"] == "bf16"
    assert (engine["fsdp"]["param_dtype"], engine["fsdp"]["reduce_dtype"]) == ("torch.bfloat16", "torch.float32")
    fitted = _weights(two_process_runs / "fsdp-bf16")["transformer.h.0.mlp.c_fc.weight"]
    before = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).transformer.h[0].mlp.c_fc.weight.detach()
    assert fitted.dtype == torch.float32
    assert (fitted != before).float().mean() > 0.5  # bf16 weights would have rounded a 1e-6 update away
    assert (fitted.to(torch.bfloat16) == before.to(torch.bfloat16)).float().mean() > 0.9
