"""`hyperfit vision evaluate`: score completions made by separate `vision complete` runs side by side, as
`vision benchmark` scores its own four conditions (hyperfit_vision.benchmark.score_conditions): FID / KID, the
repetition metrics beside the real images' own, copying of the hyperfitting data. The text side's counterpart is
`hyperfit text evaluate`.

Every condition must complete the same held-out images from the same prefix (FID against different real images,
or repetition measured on different rows, would not compare). The files are copied into the new run dir, with any
Inception feature caches found beside them (keyed by pixels and weights, so a stale one is recomputed, never used),
so the run dir holds everything its numbers came from and the inputs are never written to.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from hyperfit_core import distributed_eval
from hyperfit_core.atomic import atomic_path
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import (COMPLETIONS, FEATURES, RUN_CONFIG, condition_file, condition_files_of,
                                   condition_name, read_completions, read_run_config)
from hyperfit_core.recipe import load_train_tokens
from hyperfit_core.sequences import TokenSequences
from hyperfit_vision.scoring import REAL_FEATURES


def collect_conditions(sources: list[str]) -> dict[str, Path]:
    """{condition: completions file} of `complete` run dirs or NAME.completions.safetensors files; NAME=PATH names
    a path holding one condition. Two conditions of one name, or conditions of different images, are refused."""
    found: dict[str, Path] = {}
    for source in sources:
        label, path = source.split("=", 1) if "=" in source and not Path(source).exists() else ("", source)
        files = condition_files_of(path, COMPLETIONS)
        if label:
            if len(files) != 1:
                raise HyperfitError(f"{label}={path}: a name labels one condition, and {path} holds "
                                    f"{len(files)} ({', '.join(files)})")
            files = {label: next(iter(files.values()))}
        for name, file in files.items():
            if name in found:
                raise HyperfitError(f"two conditions are named {name!r} ({found[name]} and {file}): name each "
                                    "run that holds one condition, NAME=PATH")
            found[name] = file
    _check_same_images(found)
    return found


def _check_same_images(files: dict[str, Path]) -> None:
    reference_name, reference = None, None
    for name, file in files.items():
        data = read_completions(file)
        key = (data["real_tokens"], data["source_index"], data["prefix_rows"], data["palette"])
        if reference is None:
            reference_name, reference = name, key
            continue
        same = (key[0].shape == reference[0].shape and np.array_equal(key[0], reference[0])
                and np.array_equal(key[1], reference[1]) and key[2] == reference[2]
                and np.array_equal(key[3], reference[3]))
        if not same:
            raise HyperfitError(f"{name} and {reference_name} do not complete the same images from the same prefix "
                                "and palette: evaluate them separately")


def default_train_tokens(files: dict[str, Path]) -> TokenSequences | None:
    """The hyperfitting data of the runs' models (each complete run's config: its --train-run, else its model's
    train run) when they agree; None when no model came from a train run; refused when they differ."""
    found: list[tuple[str, TokenSequences]] = []
    for folder in dict.fromkeys(file.parent for file in files.values()):  # a run's conditions share its config
        config_path = folder / RUN_CONFIG
        if not config_path.is_file():
            continue
        config = read_run_config(folder).get("config", {})
        # a complete run names its --train-run and --model; a benchmark run its --train-run and --hyperfit
        source = config.get("train_run") or config.get("model") or config.get("hyperfit")
        try:
            tokens = load_train_tokens(source) if source else None
        except HyperfitError:
            continue  # a base model: no hyperfitting data
        if tokens is not None and not any(_same(tokens, other) for _, other in found):
            found.append((str(source), tokens))
    if len(found) > 1:
        raise HyperfitError(f"the runs' models were hyperfitted on different data ({found[0][0]}, {found[1][0]}): "
                            "pass --train-run to say whose data the overlap is measured against")
    return found[0][1] if found else None


def _same(a: TokenSequences, b: TokenSequences) -> bool:
    return a.ids.shape == b.ids.shape and bool((a.ids == b.ids).all())


def copy_into(run, files: dict[str, Path]) -> dict[str, Path]:
    """Each file into the run dir as CONDITION.completions.safetensors, with its Inception cache and the real images'
    one when present (the main process copies; every process gets the new paths)."""
    copies = {name: condition_file(run.path, name, COMPLETIONS) for name in files}
    if run.writer:
        for name, file in files.items():
            _copy(file, copies[name])
            cache = condition_file(file.parent, condition_name(file, COMPLETIONS), FEATURES)
            if cache.is_file():
                _copy(cache, condition_file(run.path, name, FEATURES))
            real = file.with_name(REAL_FEATURES)
            if real.is_file() and not (run.path / REAL_FEATURES).is_file():
                _copy(real, run.path / REAL_FEATURES)
    distributed_eval.gather(None)  # under torchrun: every copy is there before anyone reads one
    return copies


def _copy(source: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)
