"""The loop's shape (issue 22.1): setup / a loop read in one screen / finalize; checkpoints keep their state.json
format; the model comes back as it came; the loss plot is drawn from the run dir by hyperfit_core.plots."""

import ast
import inspect
import json

import torch
from transformers import AutoModelForCausalLM

from hyperfit_core import engine, train, trainable
from hyperfit_core.checkpoint import latest_checkpoint, read_state
from hyperfit_core.plots import write_loss_plot
from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences

# state.json as every checkpoint so far has written it: a resume reads exactly these
STATE_KEYS = {"epoch", "sample_in_epoch", "step", "epoch_loss_sum", "epoch_seen", "batch_size", "samples",
              "processes", "strategy", "epochs_done"}


def test_the_loop_reads_in_one_screen_between_setup_and_finalize():
    function = ast.parse(inspect.getsource(train.hyperfit)).body[0]
    code = function.body[1:]  # after the docstring
    assert code[-1].end_lineno - code[0].lineno + 1 <= 90
    body = ast.unparse(code)
    assert "setup(" in body and "return finalize(" in body
    assert not hasattr(engine, "write_loss_plot")  # plots of run dirs live in hyperfit_core.plots


def test_checkpoint_state_and_the_handed_back_model(tiny_gpt2_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    model.transformer.wpe.weight.requires_grad_(False)  # the caller's own choice, kept
    data = TokenSequences.from_ids(torch.randint(0, 50, (10, 12), generator=torch.Generator().manual_seed(1)))
    config = train.TrainConfig(lr=1e-3, epochs=2, batch_size=4, max_steps=4, train_layers="last:1",
                               gradient_checkpointing="on", progress=False)
    fitted = train.hyperfit(model, data, config, RunDir(tmp_path / "run"))
    state = read_state(latest_checkpoint(tmp_path / "run"))
    assert set(state) == STATE_KEYS
    assert (state["epoch"], state["sample_in_epoch"], state["step"], state["epochs_done"]) == (1, 4, 4, 1)
    assert not fitted.transformer.wpe.weight.requires_grad  # frozen by the caller: still frozen
    assert all(p.requires_grad for n, p in fitted.named_parameters() if n != "transformer.wpe.weight")
    assert not trainable.is_checkpointing(fitted) and not fitted.training
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["train_layers"] == "last:1" and saved["max_steps"] == 4


def test_the_loss_plot_is_drawn_from_a_run_dirs_metrics(tmp_path):
    run = RunDir(tmp_path / "run")
    assert write_loss_plot(run / "metrics.jsonl", run / "loss.png") is None  # nothing logged yet
    for step, loss in enumerate([2.0, 1.0, 0.5], start=1):
        run.log({"event": "step", "epoch": 1, "step": step, "loss": loss})
    run.log({"event": "epoch", "epoch": 1, "step": 3, "mean_loss": 1.1})
    assert write_loss_plot(run / "metrics.jsonl", run / "loss.png") == run / "loss.png"
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
