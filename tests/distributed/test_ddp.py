"""Two CPU processes (gloo, DDP through accelerate) against one: same weights, disjoint complete data, resumable.

The launch (conftest.py) runs, among others, an unbroken run, a run stopped by its step budget in the middle of
epoch 2, and that run resumed (fresh weights, all state from its checkpoint). Tolerance: the two
processes all-reduce fp32 gradients (a different summation order than one process's batch of 4), and Adam turns
last-bit gradient differences into update differences of up to ~lr/300 per step: at lr 1e-4 the weights move by
~9e-4 in 9 steps and agree with one process to 1e-6 (measured ~3e-7).
"""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from hyperfit_core.checkpoint import CHECKPOINTS
from hyperfit_core.engine import split_bounds
from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import epoch_order
from hyperfit_core.train import TrainConfig, hyperfit
from tests.distributed.common import make_data, seen
from tests.distributed.conftest import BATCH, CONFIG, EPOCHS, TOL, N


def _weights(run_dir):
    return load_file(str(run_dir / "model" / "model.safetensors"))


def _assert_close(a: dict, b: dict, tol: float):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=tol, rtol=0), (name, (a[name] - b[name]).abs().max())


def test_two_processes_train_the_same_weights_as_one(two_process_runs, tiny_gpt2_dir, tmp_path):
    one = RunDir(tmp_path / "one")
    hyperfit(AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir), make_data(N),
             TrainConfig(**{**CONFIG, "per_device_batch_size": None}), one)  # batch 4 at once, no accumulation
    _assert_close(_weights(two_process_runs / "unbroken"), _weights(one.path), TOL)
    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).state_dict()
    moved = max((w - base[k]).abs().max().item() for k, w in _weights(one.path).items())
    assert moved > 100 * TOL  # the tolerance is far below what training changed
    two_steps = [r for r in RunDir(two_process_runs / "unbroken").read_metrics() if r["event"] == "step"]
    one_steps = [r for r in one.read_metrics() if r["event"] == "step"]
    assert [r["step"] for r in two_steps] == list(range(1, 10))  # rank 0 alone writes: no duplicate lines
    assert [r["loss"] for r in two_steps] == pytest.approx([r["loss"] for r in one_steps], abs=1e-5)
    engine = RunDir(two_process_runs / "unbroken").read_metrics()[0]
    assert engine["strategy"] == "ddp" and engine["processes"] == 2 and engine["accumulation"] == 2


def test_each_rank_sees_its_own_contiguous_slice_of_every_batch(two_process_runs):
    ranks = seen(two_process_runs / "out", "unbroken", 2)
    forwards = iter(zip(*ranks))  # both ranks run the same number of forwards (2 micro batches per step)
    for epoch in range(EPOCHS):
        order = epoch_order(N, CONFIG["seed"], epoch).tolist()
        trained = []
        for first in range(0, N, BATCH):
            rows = order[first:first + BATCH]
            got = [next(forwards), next(forwards)]  # [micro][rank]
            for rank in range(2):
                lo, hi = split_bounds(len(rows), 2, rank)
                mine = rows[lo:hi]
                for micro in range(2):
                    a, b = split_bounds(len(mine), 2, micro)
                    # an empty share (short last batch) is a weight-0 forward of the batch's first sample
                    assert got[micro][rank] == (mine[a:b] or rows[:1])
                    trained += mine[a:b]
        assert sorted(trained) == list(range(N))  # every sample once per epoch, none twice, none skipped
    assert next(forwards, None) is None


def test_stopped_mid_epoch_and_resumed_on_two_processes_equals_unbroken(two_process_runs):
    broken = two_process_runs / "broken"
    steps = [int(p.name.split("-")[1]) for p in sorted((broken / CHECKPOINTS).glob("step-*"))]
    assert steps == [3, 4, 6, 9]  # epoch 1, the stop at step 4 (mid-epoch 2), epochs 2 and 3 after resuming
    stop = json.loads((broken / CHECKPOINTS / "step-000000004" / "state.json").read_text())
    assert (stop["epoch"], stop["sample_in_epoch"], stop["processes"]) == (1, 4, 2)
    # DDP over gloo on 2 ranks sums in a fixed order: the resumed run matches the unbroken one exactly
    _assert_close(_weights(broken), _weights(two_process_runs / "unbroken"), 0.0)
    out = two_process_runs / "out"
    for rank in range(2):
        assert seen(out, "stopped", 2)[rank] + seen(out, "resumed", 2)[rank] == seen(out, "unbroken", 2)[rank]
    epochs = [r for r in RunDir(broken).read_metrics() if r["event"] == "epoch"]
    assert [(r["epoch"], "partial" in r) for r in epochs] == [(1, False), (2, True), (2, False), (3, False)]


def test_a_two_process_checkpoint_resumes_on_one_process(two_process_runs, tiny_gpt2_dir, tmp_path):
    run = RunDir(tmp_path / "moved")
    shutil.copytree(two_process_runs / "broken" / CHECKPOINTS / "step-000000004",
                    run / CHECKPOINTS / "step-000000004")
    hyperfit(AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir), make_data(N), TrainConfig(**CONFIG), run,
             resume=True)
    _assert_close(_weights(run.path), _weights(two_process_runs / "unbroken"), TOL)
