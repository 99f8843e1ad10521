"""One process of the failing-work test (launched by tests/distributed/test_eval_failure.py through
torch.distributed.run): `map_items`, `map_dict` and `summed_counts` over 5 items whose work raises on rank 1 only, then
`shared_run` into an --out the main process cannot make a run dir in. Each
process records the exception it left with (type, message, the function its traceback ends in) to
OUT/outcome-rankR.json and exits 0, so the test reads what every process saw; at exit, after hyperfit's own exit
handler, whether its process group was still joined (OUT/exit-rankR.json)."""

import atexit
import json
import os
import sys
import traceback
from pathlib import Path

import torch
import torch.distributed as dist

torch.set_num_threads(1)


def record_group_at_exit():  # registered before hyperfit is imported, so it runs after hyperfit's own exit handler
    out = Path(json.loads(Path(sys.argv[1]).read_text())["out"])
    (out / f"exit-rank{os.environ['RANK']}.json").write_text(json.dumps({"group_joined": dist.is_initialized()}))


atexit.register(record_group_at_exit)

from hyperfit_core import distributed_eval  # noqa: E402


def work_failing_on_rank1(part: slice):
    if distributed_eval.rank() == 1:
        raise ValueError(f"no item {part.start} on rank 1")
    return torch.arange(part.start, part.stop)


def outcome(call) -> dict:
    try:
        call()
    except Exception as exc:  # noqa: BLE001  (recorded for the test to judge)
        return {"type": type(exc).__name__, "message": str(exc),
                "raised_in": traceback.extract_tb(exc.__traceback__)[-1].name}
    return {"type": None}


def main_worker():
    out = Path(json.loads(Path(sys.argv[1]).read_text())["out"])
    distributed_eval.start("cpu")
    seen = {
        "map_items": outcome(lambda: distributed_eval.map_items(5, work_failing_on_rank1)),
        "map_dict": outcome(lambda: distributed_eval.map_dict(5, lambda part: {"items": work_failing_on_rank1(part)})),
        # a blocker's counts that cannot be read on rank 1
        "summed_counts": outcome(lambda: distributed_eval.summed_counts(lambda: work_failing_on_rank1(slice(3, 5)))),
        # the main process cannot make the run dir (its --out is a file): every process leaves, none waits
        "shared_run": outcome(lambda: distributed_eval.shared_run(out / "not-a-folder", "evaluate")),
    }
    (out / f"outcome-rank{distributed_eval.rank()}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main_worker()
