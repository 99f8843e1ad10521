"""Work that raises on one process of a data-parallel evaluation: every process leaves with one clear error
instead of the others waiting in the gather for a part that never comes (torchrun's SIGTERM on one node, the
collective's 30-minute timeout across nodes)."""

import json

import pytest
import torch

from hyperfit_core import distributed_eval
from hyperfit_core.errors import HyperfitError
from tests.distributed.common import run_launcher


def test_failing_work_on_one_process_raises_on_every_process(tmp_path):  # and a run dir main cannot make
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"out": str(tmp_path)}))
    (tmp_path / "not-a-folder").write_text("a file where the run dirs would go\n")
    run_launcher(2, "failing_worker.py", spec, tmp_path, timeout=120)  # the old code: rank 0 waits, times out
    rank0, rank1 = (json.loads((tmp_path / f"outcome-rank{r}.json").read_text()) for r in (0, 1))
    for function in ("map_items", "map_dict", "summed_counts"):
        # rank 1 (parts 3 + 2: its part starts at item 3) left with its own exception, traceback into the work
        assert rank1[function] == {"type": "ValueError", "message": "no item 3 on rank 1",
                                   "raised_in": "work_failing_on_rank1"}, function
        # rank 0 left with one line naming the failed process and what it said
        assert rank0[function]["type"] == "HyperfitError", function
        assert rank0[function]["message"] == "process 1 of 2 failed: ValueError: no item 3 on rank 1", function
    # the run dir the main process could not make: its own error there, the same line on the other process
    told = f"cannot write to output directory {tmp_path / 'not-a-folder'}: File exists"
    assert (rank0["shared_run"]["type"], rank0["shared_run"]["message"]) == ("HyperfitError", told)
    assert (rank1["shared_run"]["type"], rank1["shared_run"]["message"]) == ("HyperfitError", told)
    # each process left its process group before the interpreter went (not doing so can SIGABRT a finished command)
    for r in (0, 1):
        assert json.loads((tmp_path / f"exit-rank{r}.json").read_text()) == {"group_joined": False}, r


@pytest.mark.parametrize("gathered", [
    lambda work: distributed_eval.map_items(5, work),
    lambda work: distributed_eval.map_dict(5, lambda part: {"items": work(part)}),
], ids=["map_items", "map_dict"])
def test_failing_work_alone_raises_its_own_exception(gathered):
    raised = ValueError("bad item")

    def work(part: slice) -> torch.Tensor:
        raise raised

    with pytest.raises(ValueError) as caught:
        gathered(work)
    assert caught.value is raised and not isinstance(caught.value, HyperfitError)
