"""A measure script stopped the way a closed session stops it (its whole process group killed) once its training
has saved a checkpoint, then run again until the training is done: it must resume that run from the checkpoint, not
hyperfit again from step 0."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable


def run_until(args: list[str], cwd: Path, env: dict, ready: Callable[[], bool], timeout: float = 600) -> None:
    """Start the script and kill its process group as soon as ready() holds (polled every 50 ms)."""
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, f"the script ended (exit {proc.returncode}) before the point to stop it"
            assert time.monotonic() < deadline, "the script did not reach the point to stop it in time"
            time.sleep(0.05)
    finally:
        gone_by = time.monotonic() + 60
        try:  # every process of the group, the trainer too: a closed session leaves none, nor a lock they held
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()  # the script reaped; its children, orphaned, are reaped by init
            while time.monotonic() < gone_by:
                os.killpg(proc.pid, 0)
                time.sleep(0.05)
        except ProcessLookupError:
            pass
        proc.wait()


def checkpoints(train: Path) -> list[Path]:
    return sorted(train.glob("*/checkpoints/step-*/state.json"))


def assert_stopped_then_resumed(args: list[str], cwd: Path, env: dict, seed: Path, label: str = "train") -> None:
    """Stop the script after its first checkpoint, run it again until `label done`; the one run dir was resumed."""
    train, timings = seed / "train", seed / "timings.txt"
    run_until(args, cwd, env, lambda: bool(checkpoints(train)))
    (run,) = [p for p in train.iterdir() if p.is_dir()]
    assert not (run / "model").exists()
    step = int(json.loads(checkpoints(train)[-1].read_text())["step"])

    run_until(args, cwd, env, lambda: timings.is_file() and f"{label} done" in timings.read_text())
    assert [p for p in train.iterdir() if p.is_dir()] == [run] and (run / "model").is_dir()
    marks = [line.split()[1:4] for line in timings.read_text().splitlines() if line.split()[1] == label]
    assert [m[1] for m in marks] == ["start", "stopped", "resume", "done"]
    stopped_at = int(marks[1][2].removeprefix("step-"))  # the newest checkpoint when it was run again
    assert stopped_at >= step and marks[2][2].endswith(run.name)
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    engines = [i for i, e in enumerate(events) if e["event"] == "engine"]
    assert [events[i]["resumed_at_step"] for i in engines] == [None, stopped_at]
    resumed = [e["step"] for e in events[engines[1]:] if e["event"] == "step"]
    assert resumed[0] == stopped_at + 1  # it went on from the checkpoint's step, not from step 1
