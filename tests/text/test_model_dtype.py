import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hyperfit_text.model import load_text_model


def test_bf16_saved_causal_lm_loads_in_fp32(tiny_llama_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(tmp_path)
    loaded = load_text_model(str(tmp_path))
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}


def test_device_auto_resolves_to_what_is_available(tiny_llama_dir):
    loaded = load_text_model(str(tiny_llama_dir), device="auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(loaded.model.parameters()).device.type == expected
