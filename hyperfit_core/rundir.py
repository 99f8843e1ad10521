"""A run dir per run: resolved config, seed, library versions, metrics.jsonl and outputs."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from hyperfit_core.atomic import ensure_writable_dir, write_json
from hyperfit_core.formats import METRICS, RUN_CONFIG, append_jsonl, read_jsonl

_VERSIONED = ("hyperfit", "torch", "torchvision", "transformers", "torchmetrics", "datasets", "numpy")


def library_versions() -> dict:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        import torch

        versions["cuda_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # a broken CUDA install must not stop a CPU run from being recorded
        versions["cuda_device"] = None
    versions["source"] = source_revision()
    return versions


def source_revision(root: Path = Path(__file__).resolve().parents[1]) -> dict | None:
    """The git commit of the hyperfit checkout this code runs from, and whether tracked files differ from it
    (an editable install's version number says nothing about which code ran); None outside a git checkout."""
    if not (root / ".git").exists():
        return None
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()

        return {"commit": git("rev-parse", "HEAD"),
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):  # no git, or a broken checkout: the run is still recorded
        return None


def process_rank() -> int:
    """This process's rank under torchrun / accelerate launch (0 when running alone)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return process_rank() == 0


def broadcast_from_main(obj):
    """The main process's `obj` on every process (a no-op when running alone)."""
    from hyperfit_core import launch  # (which also leaves the group at exit)

    if launch.world_size() == 1:
        return obj
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    PartialState()  # joins the process group torchrun / accelerate launch describe in the environment
    return broadcast_object_list([obj], from_process=0)[0]


class RunDir:
    """One folder holding everything a run produced. Created once; never reused by accident.

    Under several processes every one holds the same RunDir, but only the main process writes to it
    (`writer`): config and metrics are the main process's, so they are written once.
    """

    def __init__(self, path: str | Path, create: bool = True):
        self.writer = is_main_process()
        self.path = ensure_writable_dir(path) if create and self.writer else Path(path)

    @classmethod
    def create(cls, root: str | Path, name: str) -> "RunDir":
        root = ensure_writable_dir(root)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = root / f"{stamp}-{name}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = root / f"{stamp}-{name}-{suffix}"
        return cls(path)

    def __truediv__(self, other: str) -> Path:
        return self.path / other

    def subdir(self, name: str) -> Path:
        return ensure_writable_dir(self.path / name)

    def write_config(self, config: dict, seed: int | None = None, command: str | None = None) -> Path:
        if not self.writer:
            return self.path / RUN_CONFIG
        record = {"config": config, "seed": seed, "command": command, "versions": library_versions(),
                  "created": _dt.datetime.now().isoformat(timespec="seconds")}
        return write_json(self.path / RUN_CONFIG, record)

    def log(self, record: dict) -> None:
        """Append one JSON line to metrics.jsonl (a line is written whole and flushed)."""
        if not self.writer:
            return
        append_jsonl(self.path / METRICS, record, default=float, ensure_ascii=True)

    def read_metrics(self) -> list[dict]:
        path = self.path / METRICS
        if not path.exists():
            return []
        return read_jsonl(path)
