"""`--device` for every command: auto (CUDA when present, else CPU) or an explicit torch device; and the
memory a device has free."""

from __future__ import annotations

import torch

from hyperfit_core.errors import HyperfitError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise HyperfitError(f"unknown --device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HyperfitError(f"--device {name}: no CUDA device is available here (use auto or cpu)")
    return device


def free_memory(device: torch.device) -> int | None:
    """Bytes a new allocation on `device` can take. On CUDA that is the driver's free memory plus what
    PyTorch's caching allocator holds reserved but unused (mem_get_info alone misses the latter, so a second
    decoder in one process would see the first one's freed buffer as taken). On CPU, MemAvailable; None when
    unknown. Used to size decode batches and to decide activation checkpointing."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as meminfo:
                for line in meminfo:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
    return None
