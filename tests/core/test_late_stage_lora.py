"""Late-stage training: `--lora R --train-layers last:K` puts LoRA adapters on the last K blocks only, merged
into a plain saved model; the memory planner has a row for it."""

import subprocess
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from hyperfit_core.plan import plan_memory
from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences
from hyperfit_core.train import hyperfit
from hyperfit_core.train_config import TrainConfig
from hyperfit_core.trainable import last_block_linears
from tests.core.test_train_plan import MODELS


def _fit(model_dir, run_dir, **config):
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    data = TokenSequences.from_ids(torch.randint(0, 50, (8, 12), generator=torch.Generator().manual_seed(0)))
    options = dict(lr=1e-2, epochs=2, batch_size=4, progress=False)
    return hyperfit(model, data, TrainConfig(**{**options, **config}), RunDir(run_dir))


def test_lora_on_the_last_block_changes_only_that_block(tiny_gpt2_dir, tmp_path):
    base = load_file(str(tiny_gpt2_dir / "model.safetensors"))
    _fit(tiny_gpt2_dir, tmp_path / "run", lora_rank=2, train_layers="last:1")
    saved = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert set(saved) == set(base)  # plain keys: no adapters, no base_layer
    changed = {k for k in base if not torch.equal(base[k], saved[k])}
    assert changed and all(k.startswith("transformer.h.1.") for k in changed)
    # the adapters wrap the linears (Conv1D here) of block 1; its layer norms stay the base's
    assert {k.rsplit(".", 1)[0] for k in changed} == {"transformer.h.1.attn.c_attn", "transformer.h.1.attn.c_proj",
                                                      "transformer.h.1.mlp.c_fc", "transformer.h.1.mlp.c_proj"}


def test_the_saved_model_loads_without_peft(tiny_gpt2_dir, tmp_path):
    _fit(tiny_gpt2_dir, tmp_path / "run", lora_rank=2, train_layers="last:1", epochs=1)
    code = ("import sys; sys.modules['peft'] = None\n"  # any import of peft now fails
            "import torch; from transformers import AutoModelForCausalLM\n"
            f"m = AutoModelForCausalLM.from_pretrained({str(tmp_path / 'run' / 'model')!r})\n"
            "print(m(input_ids=torch.tensor([[1, 2, 3]])).logits.shape[-1])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "50", result.stderr


def test_last_block_linears_name_only_the_last_blocks(tiny_gpt2_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    assert last_block_linears(model, 1) == ["transformer.h.1.attn.c_attn", "transformer.h.1.attn.c_proj",
                                            "transformer.h.1.mlp.c_fc", "transformer.h.1.mlp.c_proj"]
    assert len(last_block_linears(model, 2)) == 8


def test_the_planner_has_a_row_for_lora_on_the_last_blocks():
    plan = plan_memory(str(MODELS / "TinyLlama_v1.1"), gpus=1, gpu_mem_gb=80, lora_ranks=(16,),
                       lora_layers=("last:5",))
    everywhere, late = plan.row("ddp", "lora:16"), plan.row("ddp", "lora:16+last:5")
    blocks = plan.blocks  # 22: every block has the same linears, so the adapters scale with the blocks
    assert late.trainable * blocks == everywhere.trainable * 5
    assert late.activations_gb < everywhere.activations_gb  # nothing before the last 5 blocks keeps activations
    assert late.weights_gb < everywhere.weights_gb
