"""Checkpoints of a hyperfitting run: `RUN/checkpoints/step-NNNNNNNNN/`, written so a crash never costs the last one.

Every rank writes its part (accelerate `save_state`: weights, optimizer, RNG; sharded under FSDP2/DeepSpeed)
into a hidden temporary folder; rank 0 then adds `state.json` (where the loop stands) and renames the folder
into place in one step, and only then deletes checkpoints beyond the newest `keep`. A folder without
`state.json` is never a checkpoint. All ranks must see the same run dir (a shared filesystem on several nodes).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from hyperfit_core.atomic import open_as_umask
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import read_json_object

CHECKPOINTS = "checkpoints"
STATE = "state.json"


def _complete(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / STATE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(run_path: Path) -> Path | None:
    done = _complete(Path(run_path) / CHECKPOINTS)
    return done[-1] if done else None


def read_state(checkpoint: Path) -> dict:
    return read_json_object(checkpoint / STATE)


def save_checkpoint(accelerator, run_path: Path, state: dict, keep: int) -> Path:
    root = Path(run_path) / CHECKPOINTS
    final = root / f"step-{state['step']:09d}"
    tmp = root / f".tmp-{final.name}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with open(tmp / STATE, "w") as f:
            f.write(json.dumps(state, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        open_as_umask(tmp)  # accelerate's safetensors files come 0600
        if final.exists():  # the same step saved again (a stop right after a scheduled save)
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in _complete(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in root.glob(".tmp-*"):  # left by a crash mid-save
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, run_path: Path) -> dict:
    """Restore the newest complete checkpoint into the prepared model/optimizer; returns its state.json."""
    checkpoint = latest_checkpoint(run_path)
    if checkpoint is None:
        raise HyperfitError(f"nothing to resume: {Path(run_path) / CHECKPOINTS} holds no complete checkpoint")
    accelerator.load_state(str(checkpoint))
    accelerator.step = 0  # checkpoints sit on update boundaries; the accumulation counter restarts there
    return read_state(checkpoint)
