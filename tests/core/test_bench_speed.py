"""scripts/bench_speed.py on the micro shape: both timing paths, the JSON's fields and the targets."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_speed.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_speed"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_speed", None)


def test_sequential_run_times_every_workload_and_records_compile_time(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: model)  # the tuned row's path, without minutes
    out = tmp_path / "speed.json"
    bench.main(["--shape", "micro", "--device", "cpu", "--steps", "1", "--repeats", "1", "--sequential",
                "--stock-compile", "on", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["complete"] and result["sequential"] and result["shape"] == "micro"
    rows = {row["name"]: row for row in result["workloads"]}
    assert list(rows) == ["imagegpt_train", "imagegpt_train_bf16_cpu", "imagegpt_complete", "imagegpt_train_tuned",
                          "llama_train", "llama_greedy"]
    for row in rows.values():
        assert row["stock"] > 0 and row["ours"] > 0 and row["ratio"] > 0, row
        assert "compile_s" in row and "_outputs" not in row
        assert row["targets"] == [] and row["targets_met"] is None  # targets are for --shape real only
    # ours is the product: hyperfit() with the CLI's TrainConfig, fast_complete_images with its defaults
    assert rows["imagegpt_train"]["ours_train_config"]["lr"] == 1e-6
    assert rows["imagegpt_train_tuned"]["ours"] == rows["imagegpt_train"]["ours"]
    assert rows["imagegpt_train_bf16_cpu"]["ours_options"] == {"precision": "bf16"}  # CPU only: against fp32
    assert rows["imagegpt_complete"]["tokens_match"] == 1.0  # CPU: fp32 on both sides
    assert rows["imagegpt_complete"]["tokens_match_fp32"] == 1.0
    assert rows["llama_greedy"]["tokens_match"] == 1.0 == rows["llama_greedy"]["tokens_match_fp32"]
    assert rows["llama_greedy"]["ours_fp32"] > 0


def test_targets_are_recorded_beside_the_measured_numbers(bench):
    row = bench.with_targets({"name": "imagegpt_complete", "ours": 13.0, "ratio": 7.5}, "real")
    assert [(t["field"], t["target"], t["measured"], t["met"]) for t in row["targets"]] == \
        [("ours", 12, 13.0, True), ("ratio", 8, 7.5, False)]
    assert row["targets_met"] is False
    row = bench.with_targets({"name": "llama_greedy", "ours": 9.0}, "real")
    assert row["targets_met"] is True and row["targets"][0]["op"] == "<="
    assert bench.with_targets({"name": "llama_train", "ours": None}, "real")["targets_met"] is False


def test_ours_stopped_mid_run_hands_the_model_back_unpatched(bench, monkeypatch):
    from transformers import LlamaConfig, LlamaForCausalLM

    from hyperfit_core.train import TrainConfig

    # bf16 on CPU makes accelerate patch the model's forward with autocast, as it does on CUDA
    monkeypatch.setattr(bench, "default_train_config",
                        lambda device: TrainConfig(device="cpu", progress=False, precision="bf16"))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, bos_token_id=None,
                                         eos_token_id=None, pad_token_id=None))
    before = model.forward
    run = bench.ours_trainer(model, 2, 9, 50, torch.device("cpu"), steps=2, windows=2, warmup_steps=1)()
    timed = run()
    assert timed.seconds > 0 and timed.first_s is not None
    assert "_original_forward" not in model.__dict__ and model.forward == before
    assert model(input_ids=torch.zeros(1, 4, dtype=torch.long)).logits.dtype == torch.float32


def test_data_parallel_row_times_one_and_two_processes_and_keeps_the_other_rows(bench, tmp_path):
    out = tmp_path / "speed.json"
    out.write_text(json.dumps({"device": "cpu", "shape": "micro", "workloads": [{"name": "llama_greedy", "ours": 1}]}))
    bench.main(["--shape", "micro", "--device", "cpu", "--repeats", "1", "--only", "data_parallel",
                "--out", str(out)])
    result = json.loads(out.read_text())
    rows = {row["name"]: row for row in result["workloads"]}
    assert list(rows) == ["llama_greedy", "text_generate_2proc_cpu"] and rows["llama_greedy"]["ours"] == 1
    row = rows["text_generate_2proc_cpu"]
    assert row["stock"] > 0 and row["ours"] > 0 and row["ratio"] == row["ours"] / row["stock"]
    assert row["items"] == 32 and row["load_average_1m"]["max"] >= 0
