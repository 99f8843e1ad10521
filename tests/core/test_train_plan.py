"""The memory planner on local configs of TinyLlama-1.1B, Llama-3.1-8B and Llama-3.1-70B shapes (meta device)."""

import json

import pytest
from click.testing import CliRunner
from transformers import ImageGPTConfig, LlamaConfig

from hyperfit_core.errors import HyperfitError
from hyperfit_core.plan import format_plan, load_config, plan_command, plan_memory

SHAPES = {
    "tinyllama-1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                           num_key_value_heads=4, vocab_size=32000),
    "llama-3.1-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256),
    "llama-3.1-70b": dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                          num_key_value_heads=8, vocab_size=128256),
}


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    root = tmp_path_factory.mktemp("configs")
    for name, shape in SHAPES.items():
        LlamaConfig(**shape, tie_word_embeddings=False).save_pretrained(root / name)  # config.json only
    return root


def test_sizes_come_from_the_config_alone(configs):
    plans = {name: plan_memory(configs / name, gpus=8, gpu_mem_gb=80) for name in SHAPES}
    assert plans["tinyllama-1.1b"].params == pytest.approx(1.10e9, rel=0.01)
    assert plans["llama-3.1-8b"].params == pytest.approx(8.03e9, rel=0.01)
    assert plans["llama-3.1-70b"].params == pytest.approx(70.55e9, rel=0.01)
    assert all(plan.per_gpu_batch == 1 for plan in plans.values())


def test_8b_full_does_not_fit_one_80gb_gpu_but_fits_fsdp2_on_8(configs):
    one = plan_memory(configs / "llama-3.1-8b", gpus=1, gpu_mem_gb=80).row("ddp")
    # fp32 weights + fp32 Adam moments alone are 12 bytes/parameter (~96 GB); accelerate adds fp32+bf16 gradients
    assert one.weights_gb + one.optimizer_gb == pytest.approx(96.4, abs=0.5)
    assert one.fits == "no" and 128 < one.total_ckpt_gb < 170
    eight = plan_memory(configs / "llama-3.1-8b", gpus=8, gpu_mem_gb=80)
    assert eight.row("ddp").fits == "no"
    assert eight.row("fsdp2").fits == "yes" and eight.row("fsdp2").total_gb < 30
    assert eight.row("ddp", "last:1").fits == "yes"  # the last block + head: ~0.74B trainable


def test_70b_needs_offload_on_8_gpus(configs):
    plan = plan_memory(configs / "llama-3.1-70b", gpus=8, gpu_mem_gb=80)
    assert plan.row("ddp").fits == "no" and plan.row("fsdp2").fits == "no"
    assert plan.row("fsdp2_offload").fits == "yes" and plan.row("zero3_offload").fits == "yes"
    assert plan.row("fsdp2_offload").cpu_per_node_gb == pytest.approx(16 * 70.55, rel=0.01)
    assert plan.row("fsdp2", "lora:16").fits == "yes"  # adapters only: the sharded fp32 base fits
    lora = plan.row("ddp", "lora:16")
    assert 0.15e9 < lora.trainable < 0.25e9


def test_small_configs_fit_anywhere_and_the_table_names_every_row(configs):
    plan = plan_memory(configs / "tinyllama-1.1b", gpus=1, gpu_mem_gb=80, lora_ranks=(8, 64))
    assert plan.row("ddp").fits == "yes"
    assert plan.row("ddp", "lora:8").trainable * 8 == plan.row("ddp", "lora:64").trainable
    text = format_plan(plan)
    assert len(plan.rows) == 4 * 4 and all(r.strategy in text for r in plan.rows)
    with pytest.raises(HyperfitError, match="multiple of --nodes"):
        plan_memory(configs / "tinyllama-1.1b", gpus=3, gpu_mem_gb=80, nodes=2)


def test_imagegpt_builds_on_meta_too():
    config = ImageGPTConfig(vocab_size=513, n_positions=1024, n_embd=64, n_layer=2, n_head=2)
    plan = plan_memory(config, gpus=1, gpu_mem_gb=80, seq=1024)
    assert plan.blocks == 2 and plan.row("ddp", "last:1").fits == "yes"


def test_plan_command_is_a_reusable_click_command(configs):
    command = plan_command(load_config)
    result = CliRunner().invoke(command, ["--model", str(configs / "llama-3.1-8b"), "--gpus", "8", "--gpu-mem", "80"])
    assert result.exit_code == 0, result.output
    assert "fsdp2_offload" in result.output and "8.03B" in result.output
    result = CliRunner().invoke(command, ["--model", str(configs / "llama-3.1-70b"), "--gpus", "16", "--nodes", "2",
                                          "--lora", "8", "--json"])
    plan = json.loads(result.output)
    assert plan["nodes"] == 2 and any(r["train"] == "lora:8" for r in plan["rows"])


def test_vision_plan_sizes_the_sequence_from_the_model_unless_told(tmp_path, capsys):
    from hyperfit_core.cli import main

    def plan_seq(*extra):
        try:
            main(["vision", "plan", "--model", str(tmp_path), "--gpus", "1", "--json", *extra])
        except SystemExit as exc:
            assert exc.code in (0, None), capsys.readouterr().err
        return json.loads(capsys.readouterr().out)["seq"]

    ImageGPTConfig(vocab_size=17, n_positions=256, n_embd=32, n_layer=2, n_head=2).save_pretrained(tmp_path)
    assert plan_seq() == 256  # a 16x16 model: 256 pixels, not ImageGPT-Large's 1024
    assert plan_seq("--seq", "64") == 64
