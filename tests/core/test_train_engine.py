"""The accelerate-driven loop on one CPU process: config validation, step-budget stops and resume, atomic
checkpoints, the checkpoint policy, accumulation, order seeds, last-K and LoRA hyperfitting."""

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from hyperfit_core.checkpoint import CHECKPOINTS, latest_checkpoint, read_state
from hyperfit_core.engine import batch_layout, split_bounds
from hyperfit_core.errors import HyperfitError
from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences, epoch_order
from hyperfit_core.trainable import apply_train_layers, find_blocks
from hyperfit_core.train import TrainConfig, hyperfit


def _data(n=10, length=12):
    return TokenSequences.from_ids(torch.randint(0, 50, (n, length), generator=torch.Generator().manual_seed(1)))


def _fit(model_dir, run_dir, resume=False, **config):
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    options = dict(lr=1e-3, epochs=3, batch_size=4, progress=False)
    return hyperfit(model, _data(), TrainConfig(**{**options, **config}), RunDir(run_dir), resume=resume)


def _equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("fields, message", [
    (dict(batch_size=0), "batch size"), (dict(epochs=0), "epochs"), (dict(max_steps=0), "max steps"),
    (dict(lr=0.0), "learning rate"), (dict(precision="fp16"), "precision"), (dict(compile="maybe"), "compile"),
    (dict(gradient_checkpointing="x"), "checkpointing"), (dict(save_every=0), "save every"),
    (dict(keep_checkpoints=0), "keep"), (dict(train_layers="first:2"), "last:K"),
    (dict(train_layers="last:0"), "last:K"),
    (dict(report_to="mlflow"), "tracker"), (dict(per_device_batch_size=9), "per-device"),
    (dict(device="tpu"), "device"),
    (dict(lr_schedule="step"), "schedule"), (dict(warmup_steps=-1), "warm-up")])
def test_validate_rejects_each_bad_field_with_one_line(fields, message):
    with pytest.raises(HyperfitError, match=message) as info:
        TrainConfig(**fields).validate()
    assert "\n" not in str(info.value)


def test_config_defaults_and_old_boolean_spellings():
    config = TrainConfig().validate()
    assert (config.compile, config.gradient_checkpointing, config.resolved_order_seed()) == ("auto", "auto", 0)
    assert TrainConfig(compile=True, gradient_checkpointing=False).compile == "on"
    assert TrainConfig(gradient_checkpointing=None).gradient_checkpointing == "auto"
    assert TrainConfig(seed=1, order_seed=7).resolved_order_seed() == 7


def test_learning_rate_schedules_warm_up_then_decay_to_zero_at_the_planned_end():
    constant = TrainConfig(lr=1.0)
    assert [constant.lr_at(s, 10) for s in (0, 5, 9)] == [1.0, 1.0, 1.0]
    linear = TrainConfig(lr=1.0, lr_schedule="linear", warmup_steps=2)
    assert [linear.lr_at(s, 10) for s in range(10)] == pytest.approx([0.5, 1, 1, 0.875, 0.75, 0.625, 0.5, 0.375,
                                                                       0.25, 0.125])
    cosine = TrainConfig(lr=2.0, lr_schedule="cosine")
    assert [cosine.lr_at(s, 4) for s in range(4)] == pytest.approx([2.0, 1 + 2 ** -0.5, 1.0, 1 - 2 ** -0.5])
    # the decay ends at the step budget when that comes before the last epoch
    assert TrainConfig(epochs=5, batch_size=4).planned_steps(10) == 15
    assert TrainConfig(epochs=5, batch_size=4, max_steps=7).planned_steps(10) == 7


def test_a_decaying_schedule_resumes_on_the_same_curve(tiny_gpt2_dir, tmp_path):
    schedule = dict(lr_schedule="linear", warmup_steps=2)
    unbroken = _fit(tiny_gpt2_dir, tmp_path / "a", **schedule)

    def crash(epoch, loss):
        if epoch == 1:
            raise KeyboardInterrupt

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    config = TrainConfig(lr=1e-3, epochs=3, batch_size=4, progress=False, **schedule)
    with pytest.raises(KeyboardInterrupt):
        hyperfit(model, _data(), config, RunDir(tmp_path / "b"), on_epoch_end=crash)
    resumed = _fit(tiny_gpt2_dir, tmp_path / "b", resume=True, **schedule)
    assert _equal(unbroken, resumed)
    lrs = [r["lr"] for r in RunDir(tmp_path / "b").read_metrics() if r["event"] == "step"]
    assert lrs == pytest.approx([config.lr_at(s, 9) for s in range(9)])
    assert lrs[0] == pytest.approx(5e-4) and lrs[-1] == pytest.approx(1e-3 / 7)


def test_batch_layout_and_contiguous_splits():
    assert batch_layout(8, None, 1) == (8, 1) and batch_layout(8, None, 2) == (4, 1)
    assert batch_layout(8, 1, 2) == (1, 4) and batch_layout(8, 2, 2) == (2, 2)
    with pytest.raises(HyperfitError, match="not a multiple"):
        batch_layout(8, 3, 1)
    assert [split_bounds(5, 2, r) for r in range(2)] == [(0, 3), (3, 5)]
    assert [split_bounds(1, 2, r) for r in range(2)] == [(0, 1), (1, 1)]


def test_shuffle_swaps_change_exactly_one_pair_per_epoch():
    for epoch in range(3):
        plain, swapped = epoch_order(50, 4, epoch), epoch_order(50, 4, epoch, swaps=1)
        assert (plain != swapped).sum() == 2 and sorted(swapped.tolist()) == list(range(50))
    assert torch.equal(epoch_order(50, 4, 0, swaps=0), epoch_order(50, 4, 0))


def test_step_budget_stop_mid_epoch_then_resume_is_bitwise(tiny_gpt2_dir, tmp_path):
    unbroken = _fit(tiny_gpt2_dir, tmp_path / "a")
    _fit(tiny_gpt2_dir, tmp_path / "b", max_steps=4)  # 3 steps per epoch: stops inside epoch 2
    state = read_state(latest_checkpoint(tmp_path / "b"))
    assert (state["epoch"], state["sample_in_epoch"], state["step"]) == (1, 4, 4)
    resumed = _fit(tiny_gpt2_dir, tmp_path / "b", resume=True)
    assert _equal(unbroken, resumed)
    steps = [r["step"] for r in RunDir(tmp_path / "b").read_metrics() if r["event"] == "step"]
    assert steps == list(range(1, 10))


def test_a_crash_mid_save_leaves_the_previous_checkpoint_usable(tiny_gpt2_dir, tmp_path, monkeypatch):
    import accelerate

    unbroken = _fit(tiny_gpt2_dir, tmp_path / "a", epochs=2)
    _fit(tiny_gpt2_dir, tmp_path / "b", epochs=1)
    real_save = accelerate.Accelerator.save_state

    def crash(self, output_dir, **kwargs):
        real_save(self, output_dir, **kwargs)
        open(f"{output_dir}/half-written", "w").close()
        raise OSError("disk full")

    monkeypatch.setattr(accelerate.Accelerator, "save_state", crash)
    with pytest.raises(OSError, match="disk full"):
        _fit(tiny_gpt2_dir, tmp_path / "b", resume=True, epochs=2)
    assert latest_checkpoint(tmp_path / "b").name == "step-000000003"  # the half-written one is not a checkpoint
    monkeypatch.setattr(accelerate.Accelerator, "save_state", real_save)
    resumed = _fit(tiny_gpt2_dir, tmp_path / "b", resume=True, epochs=2)
    assert _equal(unbroken, resumed)
    assert [p.name for p in (tmp_path / "b" / CHECKPOINTS).iterdir()] == ["step-000000006"]  # no leftovers


def test_save_every_and_keep_checkpoints(tiny_gpt2_dir, tmp_path):
    _fit(tiny_gpt2_dir, tmp_path / "run", epochs=4, save_every=3, keep_checkpoints=2)
    assert sorted(p.name for p in (tmp_path / "run" / CHECKPOINTS).iterdir()) == ["step-000000009", "step-000000012"]
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000
    assert (tmp_path / "run" / "train_config.json").is_file()


def test_accumulation_on_one_process_matches_the_whole_batch(tiny_gpt2_dir, tmp_path):
    whole = _fit(tiny_gpt2_dir, tmp_path / "a", lr=1e-4)
    accumulated = _fit(tiny_gpt2_dir, tmp_path / "b", lr=1e-4, per_device_batch_size=2)  # 2 micro batches of 2
    for a, b in zip(whole.state_dict().values(), accumulated.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)


def test_last_k_trains_only_the_last_blocks_and_the_head(tiny_gpt2_dir, tmp_path):
    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).state_dict()
    fitted = _fit(tiny_gpt2_dir, tmp_path / "run", epochs=1, train_layers="last:1").state_dict()
    frozen = [k for k in base if k.startswith(("transformer.h.0.", "transformer.wpe"))]
    trained = [k for k in base if k.startswith(("transformer.h.1.", "transformer.ln_f", "lm_head"))]
    assert frozen and trained
    assert all(torch.equal(base[k], fitted[k]) for k in frozen)
    assert all(not torch.equal(base[k], fitted[k]) for k in trained if not k.endswith("attn.bias"))
    assert all(p.requires_grad for p in AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model").parameters())


def test_block_lists_are_found_generically():
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                         num_attention_heads=2, num_key_value_heads=1))
    assert find_blocks(llama) is llama.model.layers
    counts = apply_train_layers(llama, "last:2")
    assert not llama.model.layers[0].self_attn.q_proj.weight.requires_grad
    assert llama.model.layers[2].mlp.up_proj.weight.requires_grad and llama.model.norm.weight.requires_grad
    assert 0 < counts["trainable"] < counts["total"]
    with pytest.raises(HyperfitError, match="only 3 blocks"):
        apply_train_layers(llama, "last:4")


def test_lora_trains_adapters_and_saves_a_merged_plain_model(tiny_gpt2_dir, tmp_path):
    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    fitted = _fit(tiny_gpt2_dir, tmp_path / "run", epochs=2, lora_rank=2, lr=1e-2)
    assert type(fitted) is type(base) and not any("lora" in name for name, _ in fitted.named_modules())
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model")
    ids = _data().ids[:, :-1]
    with torch.no_grad():
        assert torch.allclose(saved(input_ids=ids).logits, fitted(input_ids=ids).logits, atol=1e-5)
        assert not torch.allclose(saved(input_ids=ids).logits, base.eval()(input_ids=ids).logits, atol=1e-3)
    # the adapters only ever touch the linears: embeddings and norms are the base model's
    assert torch.equal(saved.transformer.wpe.weight, base.transformer.wpe.weight)
    assert torch.equal(saved.transformer.ln_f.weight, base.transformer.ln_f.weight)


def test_an_accelerator_started_before_loading_is_taken_over(tiny_gpt2_dir, tmp_path):
    from hyperfit_core import engine

    config = dict(lr=1e-3, epochs=1, batch_size=4, progress=False)
    engine.start_early(TrainConfig(**config))
    early = engine._EARLY["accelerator"]
    fitted = _fit(tiny_gpt2_dir, tmp_path / "run", **config)
    assert engine._EARLY == {} and early.project_dir == str(tmp_path / "run")
    assert fitted is not None and (tmp_path / "run" / "model").is_dir()


def test_the_model_hyperfit_returns_is_a_plain_transformers_model_after_bf16(tiny_gpt2_dir, tmp_path):
    """accelerate's mixed-precision wrapper is gone and transformers' own forward is back (return_dict works)."""
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    data = TokenSequences.from_ids(torch.randint(0, 50, (8, 12), generator=torch.Generator().manual_seed(0)))
    model = hyperfit(model, data, TrainConfig(lr=1e-3, epochs=1, batch_size=4, precision="bf16", device="cpu",
                                              progress=False), RunDir(tmp_path / "run"))
    as_tuple = model(data.ids[:2], return_dict=False)
    assert isinstance(as_tuple, tuple) and as_tuple[0].dtype == torch.float32
    assert torch.equal(model(input_ids=data.ids[:2]).logits, as_tuple[0])


def test_trackers_log_into_the_run_dir_or_say_what_is_missing(tiny_gpt2_dir, tmp_path):
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(HyperfitError, match="pip install tensorboard"):
            _fit(tiny_gpt2_dir, tmp_path / "run", epochs=1, report_to="tensorboard")
    else:
        _fit(tiny_gpt2_dir, tmp_path / "run", epochs=1, report_to="tensorboard")
        assert list((tmp_path / "run").rglob("events.out.tfevents*"))
        assert (tmp_path / "run" / "metrics.jsonl").is_file()


def test_last_k_with_gradient_checkpointing_matches_without(tiny_gpt2_dir, tmp_path):
    from hyperfit_core import trainable

    plain = _fit(tiny_gpt2_dir, tmp_path / "a", epochs=1, train_layers="last:1", gradient_checkpointing="off")
    recomputed = _fit(tiny_gpt2_dir, tmp_path / "b", epochs=1, train_layers="last:1", gradient_checkpointing="on")
    for a, b in zip(plain.state_dict().values(), recomputed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
    assert not trainable.is_checkpointing(recomputed)  # a training-only setting: handed back as it came


def test_bf16_autocast_keeps_fp32_master_weights_that_a_1e6_step_changes(tiny_gpt2_dir, tmp_path):
    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    fitted = _fit(tiny_gpt2_dir, tmp_path / "run", lr=1e-6, epochs=1, max_steps=1, precision="bf16")
    engine_record = RunDir(tmp_path / "run").read_metrics()[0]
    assert engine_record["mixed_precision"] == "bf16"
    weight, before = fitted.transformer.h[0].mlp.c_fc.weight, base.transformer.h[0].mlp.c_fc.weight
    assert weight.dtype == torch.float32
    changed = (weight != before).float().mean().item()
    assert changed > 0.5  # in bf16 weights (8 mantissa bits) a 1e-6 update to ~0.02 would round away everywhere
    assert (weight.to(torch.bfloat16) == before.to(torch.bfloat16)).float().mean().item() > 0.9
    ids = _data().ids[:2, :-1]
    with torch.no_grad():  # the returned model carries no autocast patch: plain fp32 forward
        assert fitted(input_ids=ids).logits.dtype == torch.float32


def test_auto_switches_resolve_off_on_cpu_and_explicit_ones_win():
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from hyperfit_core import engine

    def accelerator(device, kind=DistributedType.NO, processes=1):
        return SimpleNamespace(device=torch.device(device), distributed_type=kind, num_processes=processes,
                               is_fsdp2=kind == DistributedType.FSDP, state=SimpleNamespace())

    cpu, cuda = accelerator("cpu"), accelerator("cuda")
    fsdp = accelerator("cuda", DistributedType.FSDP, 8)
    assert not engine.want_compile(TrainConfig(), cpu) and engine.want_compile(TrainConfig(), cuda)
    assert not engine.want_compile(TrainConfig(), fsdp) and engine.want_compile(TrainConfig(compile="on"), fsdp)
    assert engine.want_compile(TrainConfig(compile="on"), cpu)
    assert not engine.want_compile(TrainConfig(compile="off"), cuda)
    assert not engine.want_checkpointing(TrainConfig(), cpu, None, 8, 256)
    assert engine.want_checkpointing(TrainConfig(gradient_checkpointing="on"), cpu, None, 8, 256)
    assert engine.strategy(fsdp) == "fsdp2"
    assert engine.strategy(accelerator("cpu", DistributedType.MULTI_CPU, 2)) == "ddp"
