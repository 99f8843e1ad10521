"""Launching multi-process test runs: `python -m torch.distributed.run --standalone` (gloo on CPU), bounded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import torch

from hyperfit_core.sequences import TokenSequences

REPO = Path(__file__).resolve().parents[2]


def make_data(n: int, length: int = 12) -> TokenSequences:
    """n random sequences whose first token is the sample's index, so a model input tells which sample it was."""
    ids = torch.randint(0, 50, (n, length), generator=torch.Generator().manual_seed(7))
    ids[:, 0] = torch.arange(n)
    return TokenSequences.from_ids(ids)


def launch(nproc: int, model: Path, out: Path, jobs: list[dict], *, n: int = 10, env: dict | None = None,
           timeout: float = 150) -> None:
    """Run tests/distributed/worker.py's `jobs` ({name, run, config, resume}) on `nproc` local gloo processes.

    Bounded: after `timeout` seconds the launcher and every worker are killed and the test fails with the log.
    A launch that fails before its first job finished (rendezvous, a port taken by another program on a shared
    machine) is tried once more from scratch; a job that fails fails the test."""
    out.mkdir(parents=True, exist_ok=True)
    spec = out / "spec.json"
    spec.write_text(json.dumps({"model": str(model), "out": str(out), "n": n, "jobs": jobs}, default=str))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
               str(REPO / "tests" / "distributed" / "worker.py"), str(spec)]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                   "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    for attempt in (1, 2):
        log = out / f"log-{attempt}.txt"
        with open(log, "w") as sink:
            process = subprocess.Popen(command, env=environment, stdout=sink, stderr=subprocess.STDOUT,
                                       start_new_session=True, cwd=REPO)
            try:
                status = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the launcher and every worker it started
                process.wait()
                raise AssertionError(f"multi-process run timed out after {timeout}s; log tail:\n"
                                     f"{log.read_text()[-4000:]}")
        if status == 0:
            return
        if attempt == 1 and not list(out.glob("seen-*.json")):
            for job in jobs:
                shutil.rmtree(job["run"], ignore_errors=True)
            continue
        raise AssertionError(f"multi-process run failed ({status}, attempt {attempt}); log tail:\n"
                             f"{log.read_text()[-4000:]}")


def launcher_env(config_file: Path) -> dict:
    """The environment `accelerate launch --config_file FILE` hands its worker processes (its own code)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import launch as launcher

    args = launch_command_parser().parse_args(["--config_file", str(config_file), "-m", "hyperfit_core.cli"])
    args, defaults, mp_from_config = _validate_launch_command(args)
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(
            list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else []))
        return launcher.prepare_deepspeed_cmd_env(args)[1]
    if args.use_fsdp:
        return launcher.prepare_multi_gpu_env(args)
    return launcher.prepare_simple_launcher_cmd_env(args)[1]


def seen(out: Path, name: str, nproc: int) -> list[list[list[int]]]:
    """seen[rank][forward] = the sample indices that rank fed the model in that forward pass."""
    return [json.loads((out / f"seen-{name}-rank{r}.json").read_text()) for r in range(nproc)]
