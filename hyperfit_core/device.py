"""`--device` for every command: auto (CUDA when present, else CPU) or an explicit torch device."""

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
