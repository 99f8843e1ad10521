"""Data-parallel evaluation: the same command line under `torchrun --nproc_per_node N` / `accelerate launch`
does the work of N processes.

Every evaluation command (text generate / evaluate / analyze, vision complete / benchmark / analyze) cuts its
items into contiguous parts (`engine.split_bounds`, parts differ by at most one item, an empty part is allowed),
each process works on its own part, and `gather` hands every process the parts in rank order, so concatenated
they are the items in their original order, each exactly once. The run dir is made once by the main process and
its path broadcast (`shared_run`); only the main process writes (RunDir.writer). Processes talk through
accelerate's PartialState (gloo on CPU, NCCL on CUDA, each process on its LOCAL_RANK GPU), the group training
uses. Failures are shared: work that raises on one process (`map_items`, `map_dict`, `gather_work`,
`summed_counts`, `on_main`) is told to the others in the collective they wait in, so every process leaves with
one error instead of waiting for a result that never comes. Alone (no launcher), everything here is a no-op: one
part holding every item.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import torch

from hyperfit_core import launch
from hyperfit_core.engine import split_bounds
from hyperfit_core.errors import HyperfitError

T = TypeVar("T")


def processes() -> int:
    return launch.world_size()


def start(device: str = "auto") -> None:
    """Join the process group the launcher describes (before a model is loaded: on CUDA this picks each
    process's own GPU, which `--device auto` / `cuda` then means). One process: nothing to join."""
    if processes() == 1:
        return
    if str(device).startswith("cuda:"):
        raise HyperfitError(f"--device {device} under {processes()} processes would put every process on one GPU; "
                            "use --device auto (each process takes its LOCAL_RANK GPU)")
    from hyperfit_core.engine import process_state

    process_state(device)


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if processes() > 1 and dist.is_initialized() else 0


def my_part(count: int) -> slice:
    """This process's contiguous slice of `count` items."""
    return slice(*split_bounds(count, processes(), rank()))


def gather(part: T) -> list[T]:
    """Every process's `part`, in rank order, on every process (CPU objects, pickled over the group)."""
    if processes() == 1:
        return [part]
    import torch.distributed as dist

    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, part)
    return parts


@dataclass(frozen=True)
class _Failed:
    """What a process whose work raised contributes to the gather instead of its part."""
    message: str


def gather_work(work: Callable[[], T]) -> list[T]:
    """`work()` on every process, every process's result in rank order, on every process. Work that raises on a
    process is raised there as it was (traceback intact) and, on every other process, as a HyperfitError naming
    the first process that failed: none waits in the gather for a result that never comes."""
    try:
        result = work()
    except Exception as exc:
        if processes() > 1:  # the others are waiting in this gather: tell them instead of leaving them there
            gather(_Failed(f"{type(exc).__name__}: {exc}"))
        raise
    parts = gather(result)
    failed = [(r, p) for r, p in enumerate(parts) if isinstance(p, _Failed)]
    if failed:
        r, failure = failed[0]
        raise HyperfitError(f"process {r} of {len(parts)} failed: {failure.message}")
    return parts


def _gathered_parts(count: int, work: Callable[[slice], T]) -> list[T]:
    """`work` on this process's part of `count` items (none on an empty part), every process's result in rank
    order, empty parts dropped; failures shared as gather_work shares them."""
    mine = my_part(count)
    parts = gather_work(lambda: work(mine) if mine.stop > mine.start else None)
    return [p for p in parts if p is not None]


def map_items(count: int, work: Callable[[slice], torch.Tensor]) -> torch.Tensor:
    """`work(slice)` on this process's part of `count` items, the parts gathered and concatenated in item order
    (on every process). A process whose part is empty does no work; its part is dropped."""
    return torch.cat(_gathered_parts(count, lambda part: work(part).cpu()))


def map_dict(count: int, work: Callable[[slice], dict]) -> dict:
    """As `map_items`, for work returning a dict of tensors (concatenated per key) and other values (the first
    part's, e.g. a class count every part shares)."""
    def on_cpu(part: slice):
        result = work(part)
        if isinstance(result, dict):
            result = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in result.items()}
        return result

    parts = _gathered_parts(count, on_cpu)
    return {key: torch.cat([p[key] for p in parts]) if isinstance(value, torch.Tensor) else value
            for key, value in parts[0].items()}


def on_main(work: Callable[[], T]) -> T:
    """`work()` done once, by the main process (a cache read or write, a clustering), its result handed to every
    process. An exception it raises is raised on every process (as a HyperfitError on the others), so none waits
    for a result that never comes. Alone: work()."""
    if processes() == 1:
        return work()
    from hyperfit_core.rundir import broadcast_from_main, is_main_process

    outcome, failure = None, None
    if is_main_process():
        try:
            outcome = ("done", work())
        except Exception as exc:  # noqa: BLE001  (told to the others, then raised here as it was)
            outcome, failure = ("failed", str(exc)), exc
    kind, value = broadcast_from_main(outcome)
    if failure is not None:
        raise failure
    if kind == "failed":
        raise HyperfitError(value)
    return value


def summed_counts(stats: Callable[[], dict | None]) -> dict | None:
    """A citation blocker's stats (`stats()`: this process's, or None without a blocker) summed over the
    processes, its rates recomputed from the summed counts; failures shared as gather_work shares them."""
    parts = [p for p in gather_work(stats) if p is not None]
    if not parts:
        return None
    from hyperfit_core.blocker import blocker_stats

    counts = ("steps", "steps_with_ban", "steps_top1_banned")
    return blocker_stats(*(sum(p[key] for p in parts) for key in counts),
                         **{key: value for key, value in parts[0].items() if key not in counts})


def shared_run(out: str | Path, name: str):
    """One new run dir for all processes: the main process makes it, the others learn its path (or, when it
    cannot be made, leave with the main process's error instead of waiting for a path)."""
    from hyperfit_core.rundir import RunDir

    return RunDir(on_main(lambda: str(RunDir.create(out, name).path)), create=False)


def describe() -> dict:
    """What ran, for a run's config.json."""
    return {"processes": processes()}
