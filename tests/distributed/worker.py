"""One process of a multi-process test run (launched by tests/distributed through torch.distributed.run).

Runs the spec's jobs in order: each trains the tiny model on `n` sequences whose first token is the sample's index
and writes what this rank fed the model (one list of sample indices per forward) to OUT/seen-JOB-rank{R}.json.

A job with `launch_env` (the environment `accelerate launch --config_file` gives its workers for one of
configs/accelerate's FSDP2 / DeepSpeed files) trains with that environment set, as a launched worker would: on these
CPU processes hyperfit's engine itself switches accelerate to FSDP / DeepSpeed (hyperfit_core/launch.py).
"""

import json
import os
import sys
from pathlib import Path
from unittest import mock

import torch

torch.set_num_threads(1)

from transformers import AutoModelForCausalLM  # noqa: E402

from hyperfit_core.rundir import RunDir  # noqa: E402
from hyperfit_core.train import TrainConfig, hyperfit, next_token_loss  # noqa: E402
from tests.distributed.common import make_data  # noqa: E402


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
        launched = job.get("launch_env") or {}
        with mock.patch.dict(os.environ, launched):
            hyperfit(model, data, TrainConfig(**job["config"]), RunDir(job["run"]),
                     resume=job.get("resume", False), loss_fn=recording_loss)
        if launched.get("ACCELERATE_USE_DEEPSPEED"):  # transformers' global ZeRO-3 switch: the next load is plain
            from transformers.integrations import unset_hf_deepspeed_config

            unset_hf_deepspeed_config()
        Path(spec["out"], f"seen-{job['name']}-rank{rank}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main()
