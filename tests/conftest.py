import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

# Tiny test models run faster on one thread than on two contended ones.
torch.set_num_threads(1)

# tests/gpu needs CUDA: CI's `python -m pytest` must not collect it (not even as skips); run it explicitly with
# `python -m pytest tests/gpu` (scripts/gpu_check.sh does, on a GPU machine)
collect_ignore = ["gpu"]


@pytest.fixture(autouse=True)
def no_default_scoring_model(monkeypatch, tmp_path_factory):
    """`text evaluate` scores MAUVE and fluency with data/text/gemma3's model when a checkout has it; CI has not.
    Every test sees the CI case (a test that wants a scorer names a tiny one), whatever this checkout holds."""
    monkeypatch.setattr("hyperfit_text.scorer.DEFAULT_SCORER",
                        str(tmp_path_factory.getbasetemp() / "no-default-scorer" / "absent.gguf"))


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
    """A tiny GPT-2 saved with save_pretrained: tests load it by path, as users load real models."""
    path = tmp_path_factory.mktemp("tiny-gpt2")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=64, n_embd=32, n_layer=2, n_head=2)).save_pretrained(path)
    return path
