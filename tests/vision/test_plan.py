"""`hyperfit vision plan`: ImageGPT is the vision adapter's model, registered with the planner by hyperfit_vision
(hyperfit_core names no adapter's model): built on the meta device, counted with a plain MLP."""

import json
import os
import subprocess
import sys
from pathlib import Path

from transformers import GPT2Config, ImageGPTConfig

import hyperfit_vision  # noqa: F401 - registers ImageGPT with the planner, as importing the adapter always does
from hyperfit_core.plan import activation_bytes, plan_memory

REPO = Path(__file__).resolve().parents[2]


def test_imagegpt_builds_on_meta_too():
    config = ImageGPTConfig(vocab_size=513, n_positions=1024, n_embd=64, n_layer=2, n_head=2)
    plan = plan_memory(config, gpus=1, gpu_mem_gb=80, seq=1024)
    assert plan.blocks == 2 and plan.row("ddp", "last:1").fits == "yes"


def test_imagegpt_activations_are_those_of_a_plain_mlp():
    """ImageGPT's MLP is GPT-2's (c_fc, c_proj): the same shapes as a GPT-2 config plan the same activations."""
    shape = dict(vocab_size=513, n_positions=1024, n_embd=512, n_layer=24, n_head=8)
    for checkpointing in (False, True):
        assert activation_bytes(ImageGPTConfig(**shape), 4, 1024, checkpointing=checkpointing) == \
            activation_bytes(GPT2Config(**shape), 4, 1024, checkpointing=checkpointing)


def test_the_core_alone_refuses_imagegpt_in_one_line_and_the_adapter_teaches_it():
    """Without the vision adapter imported, the planner knows no ImageGPT: one clear error, not a guess."""
    code = ("from transformers import ImageGPTConfig\n"
            "from hyperfit_core.errors import HyperfitError\n"
            "from hyperfit_core.plan import plan_memory\n"
            "config = ImageGPTConfig(vocab_size=17, n_positions=64, n_embd=32, n_layer=2, n_head=2)\n"
            "try:\n    plan_memory(config, gpus=1, gpu_mem_gb=80)\nexcept HyperfitError as exc:\n    print(exc)\n"
            "import hyperfit_vision\n"
            "print(plan_memory(config, gpus=1, gpu_mem_gb=80).blocks)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    refused, blocks = done.stdout.strip().splitlines()
    assert "cannot build a model of type 'imagegpt'" in refused and "register_model_type" in refused
    assert blocks == "2"


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
