"""The same `hyperfit vision train` command, unchanged, as one process and under torchrun on two (gloo, CPU):
one run dir (written by rank 0 alone), the same sequences, and the same weights within DDP's all-reduce
tolerance (see test_ddp.py). And under `accelerate launch --config_file` with a DeepSpeed config on this machine
without a GPU: DeepSpeed, as asked, not the DDP accelerate's cpu=True would have fallen back to.

Every launch picks a free rendezvous port (torchrun --standalone; accelerate --main_process_port 0), and runs
while the default port 29500 is held, as another job on a shared machine may hold it."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.distributed.common import REPO, default_port_busy

DEEPSPEED_YAML = REPO / "configs" / "accelerate" / "deepspeed_zero3_offload.yaml"


def _hyperfit(prefix: list[str], args: list[str], out: Path, timeout: float = 600) -> Path:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    with default_port_busy():
        process = subprocess.Popen([sys.executable, *prefix, "-m", "hyperfit_core.cli", *args, "--out", str(out)],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True, cwd=REPO)
        try:
            log, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(f"{prefix} timed out after {timeout}s: {process.communicate()[0][-3000:]}")
    assert process.returncode == 0, log[-3000:]
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, (runs, log[-3000:])  # every rank ran the recipe; only rank 0 made a run dir
    return runs[0]


def test_vision_train_runs_unchanged_under_torchrun(tiny_imagegpt_dir, image_folder_8px, tmp_path):
    args = ["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px), "--num-train", "8",
            "--epochs", "2", "--lr", "1e-4", "--batch-size", "4", "--device", "cpu"]
    one = _hyperfit([], args, tmp_path / "one")
    two = _hyperfit(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"], args, tmp_path / "two")
    assert (one / "train_tokens.safetensors").read_bytes() == (two / "train_tokens.safetensors").read_bytes()
    steps = [[r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["event"] == "step"]
             for run in (one, two)]
    assert len(steps[0]) == len(steps[1]) == 4  # 8 images, global batch 4, 2 epochs: logged once, not per rank
    a, b = load_file(str(one / "model" / "model.safetensors")), load_file(str(two / "model" / "model.safetensors"))
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6, rtol=0), (name, (a[name] - b[name]).abs().max())
    assert (two / "loss.png").is_file() and (two / "model" / "preprocessor_config.json").is_file()


def test_a_deepspeed_launch_config_takes_effect_on_a_machine_without_a_gpu(tiny_imagegpt_dir, image_folder_8px,
                                                                           tmp_path):
    args = ["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px), "--num-train", "4",
            "--epochs", "1", "--lr", "1e-4", "--batch-size", "4", "--device", "cpu"]
    launcher = ["-m", "accelerate.commands.launch", "--config_file", str(DEEPSPEED_YAML), "--num_processes", "2",
                "--main_process_port", "0"]
    run = _hyperfit(launcher, args, tmp_path / "deepspeed", timeout=600)  # DeepSpeed's CPU ops may build first
    engine = next(r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["event"] == "engine")
    assert (engine["strategy"], engine["processes"], engine["mixed_precision"]) == ("deepspeed", 2, "bf16")
    assert engine["deepspeed"] == {"zero_stage": 3, "offload_optimizer": "cpu", "bf16_weights": False,
                                   "torch_autocast": True}
    saved = load_file(str(run / "model" / "model.safetensors"))
    assert all(w.dtype == torch.float32 for w in saved.values())
