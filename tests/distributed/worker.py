"""One process of a multi-process test run (launched by tests/distributed through torch.distributed.run).

Runs the spec's jobs in order: each trains the tiny model on `n` sequences whose first token is the sample's index
and writes what this rank fed the model (one list of sample indices per forward) to OUT/seen-JOB-rank{R}.json.

A job with `fsdp_env` (the environment `accelerate launch` gives its workers for one of configs/accelerate's FSDP2
files) trains under FSDP2 on these CPU processes. accelerate enables FSDP only on accelerators, so the worker
turns the Accelerator hyperfit makes into an FSDP one by hand (the plugin built from that environment, the
distributed type set to FSDP); everything after that (fully_shard over gloo, sharded checkpoints through
torch.distributed.checkpoint, the gathered final state dict) is accelerate's and torch's own code.
"""

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import torch

torch.set_num_threads(1)

from transformers import AutoModelForCausalLM  # noqa: E402

from hyperfit_core import engine  # noqa: E402
from hyperfit_core.rundir import RunDir  # noqa: E402
from hyperfit_core.train import TrainConfig, hyperfit, next_token_loss  # noqa: E402
from tests.distributed.common import make_data  # noqa: E402


@contextmanager
def fsdp2_on_cpu(env: dict):
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    make = engine.make_accelerator
    was = PartialState._shared_state.get("distributed_type")

    def make_fsdp(config, run_path, accumulation):
        accelerator = make(config, run_path, accumulation)
        with mock.patch.dict(os.environ, env):
            plugin = FullyShardedDataParallelPlugin()
        for shared in (PartialState._shared_state, AcceleratorState._shared_state):
            shared["distributed_type"] = DistributedType.FSDP
        accelerator.state.fsdp_plugin = plugin
        return accelerator

    engine.make_accelerator = make_fsdp
    try:
        yield
    finally:
        engine.make_accelerator = make
        PartialState._shared_state["distributed_type"] = was  # the next job is plain DDP again


def main():
    # one positional argument (a JSON file): options after the script could be taken by torchrun's own parser
    spec = json.loads(Path(sys.argv[1]).read_text())
    rank = int(os.environ.get("RANK", "0"))
    data = make_data(spec["n"])
    for job in spec["jobs"]:  # run one after another in the same processes (and process group)
        seen = []

        def recording_loss(model, ids):
            seen.append(ids[:, 0].tolist())
            return next_token_loss(model, ids)

        if job.get("bare_partial_state"):  # what a caller may do first: on CPU this joins no process group
            from accelerate import PartialState

            PartialState()
        model = AutoModelForCausalLM.from_pretrained(spec["model"])  # fresh weights: a resume gets all from disk
        with fsdp2_on_cpu(job["fsdp_env"]) if job.get("fsdp_env") else mock.patch.dict({}):
            hyperfit(model, data, TrainConfig(**job["config"]), RunDir(job["run"]),
                     resume=job.get("resume", False), loss_fn=recording_loss)
        Path(spec["out"], f"seen-{job['name']}-rank{rank}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main()
