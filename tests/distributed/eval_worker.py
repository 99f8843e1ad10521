"""One process of a data-parallel evaluation test (launched by tests/distributed through torch.distributed.run).

Runs the spec's hyperfit command lines one after another in the same processes (and process group), exactly as a
user types them under `torchrun --nproc_per_node 2 -m hyperfit_core.cli ...`; after each, every process waits for
the others (the next command may read what the main process just wrote) and records that it finished it.
"""

import json
import os
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)

from hyperfit_core.cli import main  # noqa: E402


def main_worker():
    spec = json.loads(Path(sys.argv[1]).read_text())
    rank = int(os.environ.get("RANK", "0"))
    done = []
    for argv in spec["commands"]:
        main(argv)
        import torch.distributed as dist

        dist.barrier()
        done.append(argv[:2])
        Path(spec["out"], f"seen-eval-rank{rank}.json").write_text(json.dumps(done))


if __name__ == "__main__":
    main_worker()
