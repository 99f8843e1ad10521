"""Per-text rows (features, scores) cached on disk, so re-evaluating a run reuses what was computed.

Keyed like the FID feature cache (hyperfit_vision/benchmark.py:cached_features): by the text itself (its sha256)
and the identity of the model that computed it, but per text rather than per set, so a text shared by several
evaluations (the human references, an unchanged condition) goes through the model once. One safetensors file per
(kind, model identity) in a cache folder; the identity is also stored inside and checked on reading, as FID's is.
Written atomically. Under several processes (torchrun; hyperfit_core/distributed_eval.py) the main process reads
the cache and says which rows are missing, each process computes its contiguous part of them, the parts are
gathered in order, and the main process alone writes the file (two writers would lose each other's new rows).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from hyperfit_core import distributed_eval
from hyperfit_core.atomic import atomic_path


def text_key(*parts: str) -> str:
    """The cache key of one text (or of a context + continuation pair: parts stay distinct, "a"+"bc" != "ab"+"c")."""
    digest = hashlib.sha256()
    for part in parts:
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little") + encoded)
    return digest.hexdigest()


def cache_file(cache_dir: str | Path, kind: str, identity: str) -> Path:
    """Where rows of `kind` computed by the model `identity` are kept: one file per model, so two feature models
    evaluated in turn do not overwrite each other's rows."""
    return Path(cache_dir) / f"{kind}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.safetensors"


def _read(path: Path, identity: str) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        if metadata.get("identity") != identity:
            return {}
        rows = f.get_tensor("rows").numpy()
    return dict(zip(json.loads(metadata["keys"]), rows))


def computed_rows(compute: Callable[[list[int]], np.ndarray], indices: list[int]) -> np.ndarray | None:
    """compute(indices) split over the processes: each computes its contiguous part, gathered in order on every
    process (None when there is nothing to compute)."""
    if not indices:
        return None
    rows = distributed_eval.map_items(len(indices), lambda part: torch.from_numpy(
        np.ascontiguousarray(compute(indices[part]))))
    return rows.numpy()


def cached_rows(keys: Sequence[str], compute: Callable[[list[int]], np.ndarray], cache_dir: str | Path | None,
                kind: str, identity: str) -> np.ndarray:
    """One row per key, on every process: rows cached under `identity` are read back; `compute(indices)` computes
    the others (each distinct key once, given as indices into `keys`, split over the processes) and they are added
    to the cache. No cache_dir: compute all."""
    if cache_dir is None:
        return computed_rows(compute, list(range(len(keys))))
    path = cache_file(cache_dir, kind, identity)
    stored: dict[str, np.ndarray] = {}  # the main process's

    def missing() -> list[int]:
        stored.update(_read(path, identity))
        first_index: dict[str, int] = {}
        for index, key in enumerate(keys):
            if key not in stored:
                first_index.setdefault(key, index)
        return list(first_index.values())

    # the main process's cache decides, so every process splits the same list
    todo = distributed_eval.on_main(missing)
    computed = computed_rows(compute, todo)

    def store() -> np.ndarray:
        if todo:
            stored.update(zip((keys[i] for i in todo), computed))
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                save_file({"rows": torch.from_numpy(np.stack(list(stored.values())))}, str(tmp),
                          metadata={"identity": identity, "keys": json.dumps(list(stored))})
        return np.stack([stored[key] for key in keys])

    return distributed_eval.on_main(store)
