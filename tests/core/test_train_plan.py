"""The memory planner on the shipped configs of TinyLlama-1.1B, Llama-3.1-8B and Llama-3.1-70B (configs/models/,
meta device), held against DeepSpeed's own estimators and against a saved model's weights."""

import json
import os
import socket
import threading
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from transformers import LlamaConfig

from hyperfit_core.errors import HyperfitError
from hyperfit_core.plan import OFFLOAD_BUFFER, format_plan, load_config, plan_command, plan_memory

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "configs" / "models"
NAMES = {"tinyllama-1.1b": "TinyLlama_v1.1", "llama-3.1-8b": "Llama-3.1-8B", "llama-3.1-70b": "Llama-3.1-70B"}
SHAPES = {  # the published architecture values the shipped config.json files were written from
    "tinyllama-1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                           num_key_value_heads=4, vocab_size=32000),
    "llama-3.1-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256),
    "llama-3.1-70b": dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                          num_key_value_heads=8, vocab_size=128256),
}
# SmolLM2-135M (data/text/smollm2-hf/config.json): tied input/output embeddings; its model.safetensors holds
# 134,515,008 parameters (no lm_head.weight)
SMOLLM2 = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
               num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True)


@pytest.fixture(scope="module")
def configs():
    return {name: MODELS / folder for name, folder in NAMES.items()}


def test_shipped_configs_hold_the_published_shapes(configs):
    for name, path in configs.items():
        saved = json.loads((path / "config.json").read_text())
        assert {k: saved[k] for k in SHAPES[name]} == SHAPES[name] and saved["tie_word_embeddings"] is False


def test_sizes_come_from_the_config_alone(configs):
    plans = {name: plan_memory(configs[name], gpus=8, gpu_mem_gb=80) for name in SHAPES}
    assert plans["tinyllama-1.1b"].params == 1_100_048_384
    assert plans["llama-3.1-8b"].params == 8_030_261_248
    assert plans["llama-3.1-70b"].params == 70_553_706_496
    assert all(plan.per_gpu_batch == 1 for plan in plans.values())


def test_8b_full_does_not_fit_one_80gb_gpu_but_fits_fsdp2_on_8(configs):
    one = plan_memory(configs["llama-3.1-8b"], gpus=1, gpu_mem_gb=80).row("ddp")
    # fp32 weights + fp32 Adam moments alone are 12 bytes/parameter (~96 GB); accelerate adds fp32+bf16 gradients
    assert one.weights_gb + one.optimizer_gb == pytest.approx(96.4, abs=0.5)
    assert one.fits == "no" and 128 < one.total_ckpt_gb < 170
    eight = plan_memory(configs["llama-3.1-8b"], gpus=8, gpu_mem_gb=80)
    assert eight.row("ddp").fits == "no"
    assert eight.row("fsdp2").fits == "yes" and eight.row("fsdp2").total_gb < 30
    assert eight.row("ddp", "last:1").fits == "yes"  # the last block + head: ~0.74B trainable


def test_70b_needs_offload_on_8_gpus(configs):
    plan = plan_memory(configs["llama-3.1-70b"], gpus=8, gpu_mem_gb=80)
    assert plan.row("ddp").fits == "no" and plan.row("fsdp2").fits == "no"
    assert plan.row("fsdp2_offload").fits == "yes" and plan.row("zero3_offload").fits == "yes"
    # fp32 weights + gradients + Adam (16 B/parameter) with DeepSpeed's 1.5x buffer: ~1.7 TB, not 1.13
    assert plan.row("fsdp2_offload").cpu_per_node_gb == pytest.approx(16 * 70.55 * OFFLOAD_BUFFER, rel=0.01)
    assert plan.row("fsdp2", "lora:16").fits == "yes"  # adapters only: the sharded fp32 base fits
    lora = plan.row("ddp", "lora:16")
    assert 0.15e9 < lora.trainable < 0.25e9


def test_small_configs_fit_anywhere_and_the_table_names_every_row(configs):
    plan = plan_memory(configs["tinyllama-1.1b"], gpus=1, gpu_mem_gb=80, lora_ranks=(8, 64))
    assert plan.row("ddp").fits == "yes"
    assert plan.row("ddp", "lora:8").trainable * 8 == plan.row("ddp", "lora:64").trainable
    text = format_plan(plan)
    assert len(plan.rows) == 4 * 4 and all(r.strategy in text for r in plan.rows)
    with pytest.raises(HyperfitError, match="multiple of --nodes"):
        plan_memory(configs["tinyllama-1.1b"], gpus=3, gpu_mem_gb=80, nodes=2)


def test_plan_command_is_a_reusable_click_command(configs):
    command = plan_command(load_config)
    result = CliRunner().invoke(command, ["--model", str(configs["llama-3.1-8b"]), "--gpus", "8", "--gpu-mem", "80"])
    assert result.exit_code == 0, result.output
    assert "fsdp2_offload" in result.output and "8.03B" in result.output
    result = CliRunner().invoke(command, ["--model", str(configs["llama-3.1-70b"]), "--gpus", "16", "--nodes", "2",
                                          "--lora", "8", "--json"])
    plan = json.loads(result.output)
    assert plan["nodes"] == 2 and any(r["train"] == "lora:8" for r in plan["rows"])


def test_the_training_precision_does_not_come_from_the_configs_dtype(tmp_path):
    """Llama-3.1's config says bfloat16; training loads fp32 master weights whatever it says, and so must the plan."""
    for dtype in ("float32", "bfloat16"):
        LlamaConfig(**SHAPES["llama-3.1-8b"], tie_word_embeddings=False, dtype=dtype).save_pretrained(tmp_path / dtype)
    fp32, bf16 = (plan_memory(tmp_path / d, gpus=8, gpu_mem_gb=80) for d in ("float32", "bfloat16"))
    assert [json.dumps(r.__dict__) for r in fp32.rows] == [json.dumps(r.__dict__) for r in bf16.rows]
    assert bf16.row("ddp").total_gb == pytest.approx(146.4, abs=0.1)  # not 74.1
    assert bf16.row("fsdp2").total_gb == pytest.approx(21.1, abs=0.1)  # not 13.5


def test_a_tied_head_is_counted_once(tmp_path):
    import torch
    from safetensors import safe_open
    from transformers import LlamaForCausalLM

    LlamaConfig(**SMOLLM2).save_pretrained(tmp_path / "smollm2")
    assert plan_memory(tmp_path / "smollm2", gpus=1, gpu_mem_gb=80).params == 134_515_008  # not 162.83M
    # and a saved tied model plans exactly the parameters its weights file holds
    tiny = dict(SMOLLM2, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=100)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**tiny)).save_pretrained(tmp_path / "tiny")
    with safe_open(str(tmp_path / "tiny" / "model.safetensors"), "pt") as weights:
        saved = sum(weights.get_slice(k).get_shape()[0] * max(1, _prod(weights.get_slice(k).get_shape()[1:]))
                    for k in weights.keys())
    assert plan_memory(tmp_path / "tiny", gpus=1, gpu_mem_gb=80).params == saved


def _prod(shape) -> int:
    total = 1
    for n in shape:
        total *= n
    return total


def test_zero3_offload_matches_deepspeeds_own_estimator(configs):
    """DeepSpeed's estimate_zero3_model_states_mem_needs_all_cold: 70B ZeRO-3 with the optimizer offloaded on 8
    GPUs needs 16 B/parameter x 1.5 of CPU memory (1693 GB); the plan said 1129 GB before."""
    from accelerate.utils import calculate_maximum_sizes
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

    from hyperfit_core.plan import empty_model

    for name, gpus, nodes in (("llama-3.1-70b", 8, 1), ("llama-3.1-70b", 32, 4), ("llama-3.1-8b", 8, 1)):
        plan = plan_memory(configs[name], gpus=gpus, gpu_mem_gb=80, nodes=nodes)
        largest = calculate_maximum_sizes(empty_model(load_config(configs[name])))[1][0] // 4  # fp32 bytes -> params
        for row, offload_params in (("zero3_offload", False), ("fsdp2_offload", True)):
            cpu, gpu, _ = estimate_zero3_model_states_mem_needs(
                plan.params, largest, num_gpus_per_node=gpus // nodes, num_nodes=nodes, cpu_offload=True,
                cpu_offload_params=offload_params, zero_init=True, additional_buffer_factor=1.5)
            planned = plan.row(row)
            if row == "zero3_offload":
                assert planned.cpu_per_node_gb * 1e9 == pytest.approx(cpu, rel=1e-3)
                # hyperfit's ZeRO-3 keeps fp32 partitions (torch_autocast), DeepSpeed's estimate bf16 ones: more
                assert (planned.weights_gb + planned.grads_gb) * 1e9 > gpu
            else:  # DeepSpeed also keeps a 16-bit copy of offloaded parameters (18 B/param); FSDP2 does not (16)
                assert planned.cpu_per_node_gb * 1e9 == pytest.approx(cpu * 16 / 18, rel=1e-3)
    seventy = plan_memory(configs["llama-3.1-70b"], gpus=8, gpu_mem_gb=80).row("zero3_offload")
    assert seventy.cpu_per_node_gb == pytest.approx(1693, abs=1)


def test_model_arguments_that_cannot_be_read_fail_in_one_line_saying_what_to_pass(tmp_path, capsys):
    from hyperfit_core.cli import main

    def plan_error(model: str) -> str:
        with pytest.raises(SystemExit) as exit_info:
            main(["text", "plan", "--model", model, "--gpus", "1"])
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
        return err

    assert "no model folder or file at no/such/dir" in plan_error("no/such/dir")
    assert "pass a model folder, its config.json, a .gguf file or a hub id" in plan_error("no/such/dir")
    (tmp_path / "empty").mkdir()
    assert "holds no config.json" in plan_error(str(tmp_path / "empty"))


def test_a_gguf_file_plans_from_its_metadata(tmp_path):
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(tmp_path / "tiny.gguf"), "llama")
    writer.add_block_count(2)
    writer.add_context_length(64)
    writer.add_embedding_length(32)
    writer.add_feed_forward_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(50)
    writer.add_tensor("token_embd.weight", np.zeros((50, 32), dtype=np.float32))  # no output.weight: tied
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    plan = plan_memory(tmp_path / "tiny.gguf", gpus=1, gpu_mem_gb=80)
    same = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=50, tie_word_embeddings=True)
    assert plan.blocks == 2 and plan.params == plan_memory(same, gpus=1, gpu_mem_gb=80).params


class _CountingEndpoint:
    """A Hub endpoint on 127.0.0.1 that accepts each connection, keeps its request line and drops it (as an
    unreachable network would answer): how often the config was asked for says whether the lookup retried."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(5)
            try:
                self.requests.append(conn.recv(4096).split(b"\r\n")[0].decode("latin-1"))
            except OSError as exc:
                self.requests.append(repr(exc))
            conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.mark.parametrize("offline", [False, True])
def test_a_hub_id_without_network_is_one_try_or_none(offline, tmp_path):
    """huggingface_hub retries a failed connection for ~25 s; without network (here: a Hub endpoint that drops
    every connection) the plan tries once and says so, and with HF_HUB_OFFLINE set it does not connect at all."""
    script = ("import json\n"
              "from hyperfit_core.errors import HyperfitError\n"
              "from hyperfit_core.plan import load_config\n"
              "try:\n    load_config('hyperfit-test/no-such-model')\n    message = None\n"
              "except HyperfitError as exc:\n    message = str(exc)\n"
              "print(json.dumps({'message': message}))\n")
    endpoint = _CountingEndpoint()
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_ENDPOINT": f"http://127.0.0.1:{endpoint.port}",
               "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1" if offline else "0"}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    finally:
        endpoint.close()
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["message"] and "configs/models/" in result["message"], done.stderr[-2000:]
    assert ("HF_HUB_OFFLINE is set" if offline else "cannot fetch") in result["message"]
    asked = [line for line in endpoint.requests if "config.json" in line]
    assert (endpoint.requests == []) if offline else (len(asked) == 1), endpoint.requests
