"""Models larger than one device: transformers / accelerate big-model loading (`from_pretrained(device_map=...,
max_memory=...)`) places the layers over the visible GPUs, then the CPU, then disk (an offload folder), and
hooks move each layer's inputs where its weights are. hyperfit only passes the options through, checks them, and
finds where the first layer's inputs go."""

from __future__ import annotations

import atexit
import shutil
import tempfile

import torch

from hyperfit_core.errors import HyperfitError

DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def parse_max_memory(text: str | None) -> dict | None:
    """"0=70GiB,1=70GiB,cpu=200GiB" -> {0: "70GiB", 1: "70GiB", "cpu": "200GiB"} (accelerate's max_memory)."""
    if not text:
        return None
    out: dict = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value or not (key.isdigit() or key in ("cpu", "disk")):
            raise HyperfitError(f"--max-memory {text!r}: write DEVICE=SIZE pairs separated by commas, DEVICE a GPU "
                                "index, cpu or disk (e.g. 0=70GiB,1=70GiB,cpu=200GiB)")
        try:  # accelerate's own reading of a size ("70GiB", "5.0GB", or bytes)
            from accelerate.utils import convert_file_size_to_int

            convert_file_size_to_int(int(value) if value.isdigit() else value)
        except ValueError:
            raise HyperfitError(f"--max-memory {key}={value}: not a size (write bytes or e.g. 70GiB)") from None
        out[int(key) if key.isdigit() else key] = int(value) if value.isdigit() else value
    return out


def load_kwargs(device_map: str | None, max_memory: str | None, device: str = "auto") -> dict:
    """from_pretrained keyword arguments for --device-map / --max-memory (empty: the one-device path). Refused in
    one line: a device map under several processes (each would split the model again over the same GPUs), one
    beside an explicit --device, and --max-memory without a device map."""
    from hyperfit_core import launch

    if device_map is None:
        if max_memory:
            raise HyperfitError("--max-memory limits what --device-map puts on each device: pass --device-map auto")
        return {}
    if device_map not in DEVICE_MAPS:
        raise HyperfitError(f"--device-map {device_map!r}: use one of {', '.join(DEVICE_MAPS)}")
    if launch.world_size() > 1:
        raise HyperfitError(f"--device-map splits one model over every visible GPU; under {launch.world_size()} "
                            "processes each would split it again: launch one process (python, not torchrun) "
                            "or drop --device-map for data parallel")
    if device != "auto":
        raise HyperfitError(f"--device {device} and --device-map both place the model: pass one of them")
    offload = tempfile.mkdtemp(prefix="hyperfit-offload-")  # weights the map sends to disk live here meanwhile
    atexit.register(shutil.rmtree, offload, ignore_errors=True)
    return {"device_map": device_map, "max_memory": parse_max_memory(max_memory), "offload_folder": offload}


def is_dispatched(model) -> bool:
    return bool(getattr(model, "hf_device_map", None))


def input_device(model) -> torch.device:
    """Where a model's inputs go: its first parameter's device, or, for a model placed by a device map, the device
    of its first placed module (a layer offloaded to cpu / disk runs on the CPU)."""
    device_map = getattr(model, "hf_device_map", None)
    if device_map:
        first = next(iter(device_map.values()))
        return torch.device(f"cuda:{first}" if isinstance(first, int) else
                            "cpu" if first in ("cpu", "disk") else first)
    param = next(iter(model.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


def placement(model) -> dict | None:
    """What ran where, for a run's config.json: {module: device}, or None on one device."""
    device_map = getattr(model, "hf_device_map", None)
    return {name: str(where) for name, where in device_map.items()} if device_map else None
