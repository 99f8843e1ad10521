"""A run dir per run: resolved config, seed, library versions, metrics.jsonl and outputs."""

from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
from importlib import metadata
from pathlib import Path

from hyperfit_core.atomic import ensure_writable_dir, write_json

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
    return versions


class RunDir:
    """One folder holding everything a run produced. Created once; never reused by accident."""

    def __init__(self, path: str | Path):
        self.path = ensure_writable_dir(path)

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
        record = {"config": config, "seed": seed, "command": command, "versions": library_versions(),
                  "created": _dt.datetime.now().isoformat(timespec="seconds")}
        return write_json(self.path / "config.json", record)

    def log(self, record: dict) -> None:
        """Append one JSON line to metrics.jsonl (a line is written whole and flushed)."""
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record, default=float) + "\n")
            f.flush()

    def read_metrics(self) -> list[dict]:
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
