"""Hugging Face dataset names as the CLIs take them: `name[:config[:split]]`, for text and images alike."""

from __future__ import annotations

from hyperfit_core.errors import HyperfitError


def parse_dataset_spec(spec: str, default_split: str = "train") -> tuple[str, str | None, str]:
    """`name[:config[:split]]` -> (name, config or None, split); a split in the spec wins over `default_split`."""
    parts = spec.split(":")
    if len(parts) > 3 or not parts[0]:
        raise HyperfitError(f"dataset {spec!r} is not name[:config[:split]], nor a local file or folder")
    config = parts[1] if len(parts) > 1 and parts[1] else None
    split = parts[2] if len(parts) > 2 and parts[2] else default_split
    return parts[0], config, split
