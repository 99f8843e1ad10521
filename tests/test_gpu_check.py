"""scripts/gpu_check.sh --dry-run: the device check's steps, time-boxed, on micro shapes on this CPU."""

import json
import os
import subprocess
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_runs_every_step_and_writes_log_and_json(tmp_path):
    """What runs, not how fast: the dry run's own step limits are hang guards (600 s a step, 1800 s in all), so a
    loaded machine (load 10 outran a 120 s step limit) slows it down without failing it."""
    env = {**os.environ, "OUT": str(tmp_path)}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=1900)
    log = (tmp_path / "gpu_check.log").read_text()
    assert done.returncode == 0, log[-3000:]
    for step in ("environment", "gpu_tests", "bench_imagegpt", "bench_llama"):
        assert f"== {step}: rc=0" in log
    assert "failed: none" in log
    assert "(limit 600s)" in log  # each step's limit is the hang guard, whatever the load
    assert "skipped" in log  # tests/gpu ran (and skipped: no CUDA here)
    assert (tmp_path / "gpu_tests.xml").is_file()
    names = []
    for family in ("imagegpt", "llama"):
        result = json.loads((tmp_path / f"speed_micro_{family}.json").read_text())
        assert result["complete"] and result["shape"] == "micro"
        names += [row["name"] for row in result["workloads"]]
    # the dry run is on a CPU, so the CPU-only bf16 row is there too
    assert names == ["imagegpt_train", "imagegpt_train_bf16_cpu", "imagegpt_complete", "llama_train", "llama_greedy"]


def test_usage_error_for_unknown_arguments(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--bogus"], capture_output=True,
                          text=True, env={**os.environ, "OUT": str(tmp_path)})
    assert done.returncode == 2 and "usage" in done.stderr
