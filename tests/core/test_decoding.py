import pytest
import torch
from transformers import AutoModelForCausalLM

from hyperfit_core.decoding import DecodingConfig, generate_tokens
from hyperfit_core.errors import HyperfitError


@pytest.fixture(scope="module")
def model(tiny_gpt2_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).eval()


def _prompts(n=5, length=6):
    return torch.randint(0, 50, (n, length), generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def _uncached_greedy(model, prompts, new):
    tokens = prompts
    for _ in range(new):
        tokens = torch.cat([tokens, model(input_ids=tokens).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return tokens


def test_cached_greedy_equals_an_uncached_argmax_loop(model):
    prompts = _prompts()
    ours = generate_tokens(model, prompts, 20, batch_size=2, progress=False)
    assert torch.equal(ours, _uncached_greedy(model, prompts, 20))
    assert torch.equal(ours[:, :6], prompts)


def test_greedy_equals_hf_generate(model):
    prompts = _prompts()
    hf = model.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=20, do_sample=False,
                        pad_token_id=0)
    assert torch.equal(generate_tokens(model, prompts, 20, progress=False), hf)


def test_sampling_is_seeded_and_differs_from_greedy(model):
    prompts = _prompts()
    config = DecodingConfig(strategy="sample", temperature=1.5, seed=7)
    a = generate_tokens(model, prompts, 20, config, progress=False)
    b = generate_tokens(model, prompts, 20, config, progress=False)
    c = generate_tokens(model, prompts, 20, DecodingConfig(strategy="sample", temperature=1.5, seed=8), progress=False)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, generate_tokens(model, prompts, 20, progress=False))


def test_top_k_one_is_greedy(model):
    prompts = _prompts()
    sampled = generate_tokens(model, prompts, 15, DecodingConfig(strategy="sample", top_k=1, seed=3), progress=False)
    assert torch.equal(sampled, generate_tokens(model, prompts, 15, progress=False))


def test_paper_top_p_baseline_settings():
    config = DecodingConfig.paper_top_p()
    assert (config.strategy, config.top_p, config.temperature, config.top_k) == ("sample", 0.9, 0.7, 50)


def test_bad_decoding_input(model):
    with pytest.raises(HyperfitError, match="positions"):
        generate_tokens(model, _prompts(length=40), 30, progress=False)
    with pytest.raises(HyperfitError, match="strategy"):
        DecodingConfig(strategy="beam")
    with pytest.raises(HyperfitError, match="top-p"):
        DecodingConfig(strategy="sample", top_p=1.5)
