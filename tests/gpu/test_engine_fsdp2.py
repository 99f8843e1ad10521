"""FSDP2 through accelerate on CUDA (accelerate enables FSDP only on accelerators, so this can't run on CPU).

Launches tests/distributed/worker.py on min(2, GPUs) processes with the environment `accelerate launch --config_file
configs/accelerate/fsdp2_8gpu.yaml` gives its workers: an unbroken run, a run stopped mid-epoch by its step budget
and that run resumed from its sharded checkpoint. Run by the GPU check script, not by CI.
"""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hyperfit_core.rundir import RunDir
from tests.distributed.common import launch, launcher_env

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

FSDP2_YAML = Path(__file__).resolve().parents[2] / "configs" / "accelerate" / "fsdp2_8gpu.yaml"
CONFIG = dict(lr=1e-4, epochs=3, batch_size=4, seed=5, progress=False)


def test_fsdp2_trains_and_resumes_from_a_sharded_checkpoint(tiny_gpt2_dir, tmp_path):
    nproc = min(2, torch.cuda.device_count())
    jobs = [dict(name="unbroken", run=tmp_path / "unbroken", config=CONFIG),
            dict(name="stopped", run=tmp_path / "broken", config={**CONFIG, "max_steps": 4}),
            dict(name="resumed", run=tmp_path / "broken", config=CONFIG, resume=True)]
    env = launcher_env(FSDP2_YAML)  # what `accelerate launch --config_file fsdp2_8gpu.yaml` gives its workers
    launch(nproc, tiny_gpt2_dir, tmp_path / "out", jobs, env=env, timeout=300)
    engine = RunDir(tmp_path / "unbroken").read_metrics()[0]
    assert engine["strategy"] == "fsdp2" and engine["mixed_precision"] == "bf16"
    assert (engine["fsdp"]["param_dtype"], engine["fsdp"]["reduce_dtype"]) == ("torch.bfloat16", "torch.float32")
    epochs = [r["mean_loss"] for r in RunDir(tmp_path / "unbroken").read_metrics() if r["event"] == "epoch"]
    assert epochs[-1] < epochs[0]
    a = load_file(str(tmp_path / "unbroken" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "broken" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(v.dtype == torch.float32 for v in a.values())  # fp32 master weights saved
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5, rtol=0), name
