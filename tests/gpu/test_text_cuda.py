"""Greedy text decoding on CUDA (hyperfit_core.decoding.generate_tokens) gives HF generate's tokens."""

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hyperfit_core.decoding import generate_tokens


def _llama(device):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=500, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=None, eos_token_id=None, pad_token_id=None)
    return LlamaForCausalLM(config).to(device).eval()


def test_greedy_text_on_cuda_equals_hf_generate(cuda):
    model = _llama(cuda)
    prompts = torch.randint(0, 500, (6, 12), generator=torch.Generator().manual_seed(1))
    p = prompts.to(cuda)
    with torch.no_grad():
        hf = model.generate(input_ids=p, attention_mask=torch.ones_like(p), do_sample=False,
                            max_new_tokens=24).cpu()
    ours = generate_tokens(model, prompts, 24, batch_size=4, progress=False, precision="fp32")
    assert torch.equal(ours, hf)
    # the CUDA default is bf16 autocast: logits close to fp32's (tokens may part at a near tie), weights untouched
    auto = generate_tokens(model, prompts, 24, batch_size=4, progress=False)
    assert auto.shape == hf.shape and torch.equal(auto[:, :12], prompts) and int(auto.max()) < 500
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    with torch.no_grad():
        fp32 = model(input_ids=p).logits
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = model(input_ids=p).logits.float()
    assert (fp32 - bf16).abs().max() < 0.05 * fp32.abs().max()
