"""DeepSpeed ZeRO-3 with the optimizer offloaded to DeepSpeed's CPU Adam (configs/accelerate/deepspeed_zero3_offload
.yaml's launch environment) on two CPU processes over gloo, against one process: hyperfit's engine switches accelerate
to DeepSpeed on CPU (hyperfit_core/launch.py) with DeepSpeed's CPU accelerator.

fp32 runs compare with DDP's tolerance (conftest: 1e-6 at lr 1e-4); they use a warm-up and a decaying learning rate,
which DeepSpeed (stepping inside backward) would apply a step late if the rate were set after it. The bf16 run checks
the paper's lr 1e-6 against DeepSpeed's own bf16 mode, which rounds the fp32 master copy from bf16 weights and saves
bf16: hyperfit runs DeepSpeed's torch_autocast instead (fp32 weights, bf16 matmuls)."""

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from hyperfit_core.checkpoint import latest_checkpoint, read_state
from hyperfit_core.rundir import RunDir
from hyperfit_core.train import TrainConfig, hyperfit
from tests.distributed.common import make_data
from tests.distributed.conftest import CONFIG, DS_CONFIG, TOL, N


def _weights(run_dir) -> dict:
    weights = load_file(str(run_dir / "model" / "model.safetensors"))
    weights.pop("lm_head.weight", None)  # tied to the input embeddings: written by some paths, not by others
    return weights


def _assert_close(a: dict, b: dict, tol: float):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=tol, rtol=0), (name, (a[name] - b[name]).abs().max())


def test_deepspeed_zero3_with_cpu_adam_trains_the_same_weights_as_one_process(deepspeed_runs, tiny_gpt2_dir,
                                                                               tmp_path):
    engine = RunDir(deepspeed_runs / "unbroken").read_metrics()[0]
    assert engine["strategy"] == "deepspeed" and engine["processes"] == 2 and engine["accumulation"] == 2
    assert engine["deepspeed"]["zero_stage"] == 3 and engine["deepspeed"]["offload_optimizer"] == "cpu"
    one = RunDir(tmp_path / "one")
    hyperfit(AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir), make_data(N),
             TrainConfig(**{**DS_CONFIG, "per_device_batch_size": None}), one)
    ds = _weights(deepspeed_runs / "unbroken")
    assert all(w.dtype == torch.float32 for w in ds.values())  # gathered from the ZeRO-3 partitions, a plain model
    _assert_close(ds, _weights(one.path), TOL)
    lrs = [r["lr"] for r in RunDir(deepspeed_runs / "unbroken").read_metrics() if r["event"] == "step"]
    assert lrs == [r["lr"] for r in one.read_metrics() if r["event"] == "step"] and lrs[0] < lrs[1]


def test_deepspeed_checkpoint_written_mid_epoch_resumes_on_the_same_path(deepspeed_runs, tiny_gpt2_dir, tmp_path):
    checkpoint = latest_checkpoint(deepspeed_runs / "broken")
    assert read_state(checkpoint)["strategy"] == "deepspeed"
    engines = [r for r in RunDir(deepspeed_runs / "broken").read_metrics() if r["event"] == "engine"]
    assert [r["resumed_at_step"] for r in engines] == [None, 4]  # stopped mid-epoch 2 by the budget, resumed
    one = RunDir(tmp_path / "one")  # the same 9 steps unbroken, on one process
    hyperfit(AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir), make_data(N),
             TrainConfig(**{**CONFIG, "per_device_batch_size": None}), one)
    _assert_close(_weights(deepspeed_runs / "broken"), _weights(one.path), TOL)


def test_deepspeed_bf16_keeps_fp32_master_weights_from_the_checkpoint_and_saves_fp32(deepspeed_runs, tiny_gpt2_dir):
    engine = RunDir(deepspeed_runs / "bf16").read_metrics()[0]
    assert engine["mixed_precision"] == "bf16"
    assert engine["deepspeed"]["torch_autocast"] and not engine["deepspeed"]["bf16_weights"]
    saved = load_file(str(deepspeed_runs / "bf16" / "model" / "model.safetensors"))
    assert all(w.dtype == torch.float32 for w in saved.values())  # DeepSpeed's bf16 mode saved bf16
    fitted = saved["transformer.h.0.mlp.c_fc.weight"]
    before = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).transformer.h[0].mlp.c_fc.weight.detach()
    # one Adam step at lr 1e-6 moves every weight by ~1e-6: the master copy started from the checkpoint's values,
    # not from their bf16 rounding (~60x larger than the step), so no weight sits on its rounded start
    assert (fitted == before.to(torch.bfloat16).float()).float().mean() < 0.05
    assert (fitted - before).abs().max() < 1e-5 and (fitted != before).float().mean() > 0.5
