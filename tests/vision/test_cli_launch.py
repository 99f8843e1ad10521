"""The same `hyperfit vision train` command, unchanged, as one process and under torchrun on two (gloo, CPU):
one run dir (written by rank 0 alone), the same sequences, and the same weights within DDP's all-reduce
tolerance (see test_ddp.py)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.distributed.common import REPO


def _hyperfit(prefix: list[str], args: list[str], out: Path, timeout: float = 150) -> Path:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
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
