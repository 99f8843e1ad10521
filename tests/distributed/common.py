"""Launching multi-process test runs: `python -m torch.distributed.run --standalone` (gloo on CPU), bounded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import torch

from hyperfit_core.sequences import TokenSequences

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PORT = 29500  # torch's and accelerate's default rendezvous port


@contextmanager
def default_port_busy():
    """Hold the default rendezvous port while the block runs, as another job on a shared machine may: a test's
    launch must pick a free port. If something else holds it already, so much the better."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", DEFAULT_PORT))
            sock.listen()
        except OSError:
            pass
        yield


def make_data(n: int, length: int = 12) -> TokenSequences:
    """n random sequences whose first token is the sample's index, so a model input tells which sample it was."""
    ids = torch.randint(0, 50, (n, length), generator=torch.Generator().manual_seed(7))
    ids[:, 0] = torch.arange(n)
    return TokenSequences.from_ids(ids)


def launch(nproc: int, model: Path, out: Path, jobs: list[dict], *, n: int = 10, env: dict | None = None,
           timeout: float = 600) -> None:
    """Run tests/distributed/worker.py's `jobs` ({name, run, config, resume}) on `nproc` local gloo processes.

    Bounded: after `timeout` seconds the launcher and every worker are killed and the test fails with the log.
    A launch that fails before its first job finished (rendezvous, a port taken by another program on a shared
    machine) is tried once more from scratch; a job that fails fails the test."""
    out.mkdir(parents=True, exist_ok=True)
    spec = out / "spec.json"
    spec.write_text(json.dumps({"model": str(model), "out": str(out), "n": n, "jobs": jobs}, default=str))
    run_launcher(nproc, "worker.py", spec, out, env=env, timeout=timeout,
                 clean=lambda: [shutil.rmtree(job["run"], ignore_errors=True) for job in jobs])


def run_launcher(nproc: int, script: str, spec: Path, out: Path, *, env: dict | None = None, timeout: float = 150,
                 clean=lambda: None) -> None:
    """tests/distributed/SCRIPT SPEC on `nproc` local gloo processes (torch.distributed.run --standalone: a free
    rendezvous port), bounded by `timeout`; a launch that fails before any worker wrote OUT/seen-* is retried once
    after `clean()`."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
               str(REPO / "tests" / "distributed" / script), str(spec)]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                   "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    for attempt in (1, 2):
        log = out / f"log-{attempt}.txt"
        with open(log, "w") as sink, default_port_busy():
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
            clean()
            continue
        raise AssertionError(f"multi-process run failed ({status}, attempt {attempt}); log tail:\n"
                             f"{log.read_text()[-4000:]}")


def launcher_env(config_file: Path) -> dict:
    """The settings `accelerate launch --config_file FILE` hands its worker processes (its own code): the
    ACCELERATE_* / FSDP_* variables it adds to the environment. Port 0: accelerate picks a free rendezvous port
    (with the file's 29500 a busy port fails the launch, or silently moves it)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import launch as launcher

    args = launch_command_parser().parse_args(["--config_file", str(config_file), "--main_process_port", "0",
                                               "-m", "hyperfit_core.cli"])
    args, defaults, mp_from_config = _validate_launch_command(args)
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(
            list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else []))
        env = launcher.prepare_deepspeed_cmd_env(args)[1]
    elif args.use_fsdp:
        env = launcher.prepare_multi_gpu_env(args)
    else:
        env = launcher.prepare_simple_launcher_cmd_env(args)[1]
    return {k: v for k, v in env.items() if k.startswith(("ACCELERATE_", "FSDP_")) and os.environ.get(k) != v}


def seen(out: Path, name: str, nproc: int) -> list[list[list[int]]]:
    """seen[rank][forward] = the sample indices that rank fed the model in that forward pass."""
    return [json.loads((out / f"seen-{name}-rank{r}.json").read_text()) for r in range(nproc)]
