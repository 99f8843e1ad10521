"""Write files and folders so that a crash never leaves a half-written result behind (temp + rename)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hyperfit_core.errors import HyperfitError


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create `path` (and parents) and prove we can write into it, or raise one clear HyperfitError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise HyperfitError(f"cannot write to output directory {path}: {exc.strerror or exc}") from None
    return path


@contextmanager
def checked_out_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Prove `path` writable before any work (creating it); if the block fails, remove what was created here,
    so a bad input leaves nothing behind."""
    path = Path(path)
    first_missing = next((p for p in [*reversed(path.parents), path] if not p.exists()), None)
    ensure_writable_dir(path)
    try:
        yield path
    except BaseException:
        if first_missing is not None:
            shutil.rmtree(first_missing, ignore_errors=True)
        raise


def umask_file_mode() -> int:
    """The permission bits open() gives a new file in this process (0o666 less the umask)."""
    try:  # Linux says the umask without changing it; os.umask can only read it by setting it for a moment
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def open_as_umask(path: str | os.PathLike) -> None:
    """Give each file at or under `path` whose permission bits are fewer than the umask allows (safetensors >= 0.8
    writes every file 0600 whatever the umask, safetensors#782) the bits a file open() made would have, so a run
    dir's weights, completions and features are readable by whoever may read its config.json (a lab's group, a
    container's other user). Bits beyond those (an executable) are kept."""
    path, mode = Path(path), umask_file_mode()
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else []
    for file in files:
        bits = file.stat().st_mode & 0o777
        if bits != mode and bits & ~mode == 0:  # strictly fewer: widen to the umask's
            os.chmod(file, mode)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it replaces `path` in one rename, on failure it is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        open_as_umask(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it takes the place of `path` (an old one is replaced)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        open_as_umask(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
