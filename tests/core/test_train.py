import pytest
import torch
from transformers import AutoModelForCausalLM

from hyperfit_core.checkpoint import latest_checkpoint, read_state
from hyperfit_core.errors import HyperfitError
from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences
from hyperfit_core.train import TrainConfig, hyperfit, next_token_loss


def _data(n=6, length=20, seed=0):
    return TokenSequences.from_ids(torch.randint(0, 50, (n, length), generator=torch.Generator().manual_seed(seed)))


def test_hyperfitting_drives_training_loss_near_zero(tiny_gpt2_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    data = _data()
    before = next_token_loss(model, data.ids).item()
    run = RunDir(tmp_path / "run")
    hyperfit(model, data, TrainConfig(lr=1e-2, epochs=60, batch_size=3, progress=False, target_loss=0.05), run)
    epochs = [r for r in run.read_metrics() if r["event"] == "epoch"]
    assert before > 3.0
    assert epochs[-1]["mean_loss"] < 0.05
    assert next_token_loss(model.eval(), data.ids).item() < 0.1
    assert any(r["event"] == "target_reached" for r in run.read_metrics())
    steps = [r for r in run.read_metrics() if r["event"] == "step"]
    assert len(steps) == 2 * len(epochs)  # 6 sequences / batch 3
    reloaded = AutoModelForCausalLM.from_pretrained(run / "model")  # saved with save_pretrained
    assert torch.equal(reloaded.lm_head.weight, model.lm_head.weight.cpu())


def test_kill_and_resume_equals_an_unbroken_run(tiny_gpt2_dir, tmp_path):
    config = TrainConfig(lr=1e-3, epochs=4, batch_size=4, progress=False, seed=3)
    data = _data(n=10)
    unbroken = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    hyperfit(unbroken, data, config, RunDir(tmp_path / "a"))

    class Killed(Exception):
        pass

    def kill_after_two(epoch, _loss):
        if epoch == 2:
            raise Killed

    broken_run = RunDir(tmp_path / "b")
    with pytest.raises(Killed):
        hyperfit(AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir), data, config, broken_run,
                 on_epoch_end=kill_after_two)
    assert read_state(latest_checkpoint(broken_run.path))["epochs_done"] == 2
    resumed = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)  # fresh weights: all state must come from disk
    hyperfit(resumed, data, config, broken_run, resume=True)
    for (name, a), (_, b) in zip(unbroken.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    epochs = [r["epoch"] for r in broken_run.read_metrics() if r["event"] == "epoch"]
    assert epochs == [1, 2, 3, 4]


def test_nan_loss_stops_with_a_clear_error(tiny_gpt2_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    with pytest.raises(HyperfitError, match="loss became nan"):
        hyperfit(model, _data(), TrainConfig(epochs=1, progress=False), RunDir(tmp_path / "run"),
                 loss_fn=lambda m, ids: next_token_loss(m, ids) * float("nan"))
    assert not (tmp_path / "run" / "model").exists()


def test_resume_without_checkpoint_is_an_error(tiny_gpt2_dir, tmp_path):
    with pytest.raises(HyperfitError, match="nothing to resume"):
        hyperfit(AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir), _data(), TrainConfig(progress=False),
                 RunDir(tmp_path / "run"), resume=True)


def test_sequences_are_checked():
    with pytest.raises(HyperfitError, match="empty"):
        TokenSequences.from_ids(torch.zeros((0, 5)))
    with pytest.raises(HyperfitError, match="positions"):
        TokenSequences.from_ids(torch.zeros((2, 1026))).check_fits(1024)
    TokenSequences.from_ids(torch.zeros((2, 1025))).check_fits(1024)


def test_sequences_save_load_round_trip(tmp_path):
    data = _data()
    data.save(tmp_path / "t.safetensors")
    loaded = TokenSequences.load(tmp_path / "t.safetensors")
    assert torch.equal(loaded.ids, data.ids) and torch.equal(loaded.source_index, data.source_index)
    (tmp_path / "bad.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(HyperfitError, match="cannot read"):
        TokenSequences.load(tmp_path / "bad.safetensors")


def test_gradient_checkpointing_gives_the_same_weights(tiny_gpt2_dir, tmp_path):
    data = _data(n=8)
    plain = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    hyperfit(plain, data, TrainConfig(lr=1e-3, epochs=2, batch_size=4, progress=False), RunDir(tmp_path / "a"))
    checkpointed = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    hyperfit(checkpointed, data, TrainConfig(lr=1e-3, epochs=2, batch_size=4, progress=False,
                                             gradient_checkpointing=True), RunDir(tmp_path / "b"))
    for (name, a), (_, b) in zip(plain.state_dict().items(), checkpointed.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name
