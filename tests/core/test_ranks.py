"""Rank reordering vs static reweighting: ranks under a model, and the fixed logit-bias ablation."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hyperfit_core.decoding import DecodingConfig, generate_tokens
from hyperfit_core.errors import HyperfitError
from hyperfit_core.ranks import (LogitBias, load_logit_bias, mean_log_prob_shift, output_classes, rank_edges,
                                 save_logit_bias, summarize_ranks, token_ranks)


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=1,
                                         max_position_embeddings=64)).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(10)
    prompts = torch.randint(0, 40, (5, 6), generator=torch.Generator().manual_seed(2))
    return model, prompts


def test_a_models_own_greedy_tokens_have_rank_0(lm):
    model, prompts = lm
    tokens = generate_tokens(model, prompts, 12, progress=False)
    ranks = token_ranks(model, tokens, prompts.shape[1], batch_size=2)
    assert ranks.shape == (5, 12) and (ranks == 0).all()
    summary = summarize_ranks(ranks, output_classes(model))
    assert summary["outside_top1"] == 0 and summary["mean_rank"] == 0 and summary["histogram"]["counts"][0] == 60


def test_ranks_count_the_strictly_larger_logits(lm):
    """Sampled tokens are ranked against the logits the model gives them: rank = #classes with larger logits."""
    model, prompts = lm
    sampled = generate_tokens(model, prompts, 8, DecodingConfig(strategy="sample", temperature=5.0, seed=1),
                              progress=False)
    ranks = token_ranks(model, sampled, prompts.shape[1])
    logits = model(input_ids=sampled[:, :-1]).logits[:, prompts.shape[1] - 1:]
    chosen = logits.gather(-1, sampled[:, prompts.shape[1]:, None])
    assert torch.equal(ranks, (logits > chosen).sum(-1)) and (ranks > 0).any()
    summary = summarize_ranks(ranks, 40)
    assert summary["outside_top1"] == pytest.approx(float((ranks >= 1).double().mean()))
    assert summary["outside_top5"] == pytest.approx(float((ranks >= 5).double().mean()))
    assert sum(summary["histogram"]["counts"]) == ranks.numel()


def test_rank_edges_cover_every_rank():
    assert rank_edges(40) == [0, 1, 2, 5, 10, 20, 40]
    assert rank_edges(512)[-1] == 512 and rank_edges(49152)[-1] == 49152


def test_zero_bias_changes_nothing_and_a_huge_bias_forces_its_token(lm):
    model, prompts = lm
    plain = generate_tokens(model, prompts, 10, progress=False)
    assert torch.equal(generate_tokens(model, prompts, 10, processors=[LogitBias(torch.zeros(40))], progress=False),
                       plain)
    forced = torch.zeros(40)
    forced[7] = 1e4
    out = generate_tokens(model, prompts, 10, processors=[LogitBias(forced)], progress=False)
    assert (out[:, prompts.shape[1]:] == 7).all()


def test_mean_shift_of_a_model_with_itself_is_zero_and_files_round_trip(lm, tmp_path):
    model, prompts = lm
    tokens = generate_tokens(model, prompts, 6, progress=False)
    shift = mean_log_prob_shift(model, model, tokens, prompts.shape[1])
    assert shift.shape == (40,) and torch.equal(shift, torch.zeros(40))
    save_logit_bias(tmp_path / "bias.safetensors", torch.arange(40.0))
    assert torch.equal(load_logit_bias(tmp_path / "bias.safetensors", 40), torch.arange(40.0))
    with pytest.raises(HyperfitError, match="has 40 entries; the model predicts 41"):
        load_logit_bias(tmp_path / "bias.safetensors", 41)
    (tmp_path / "junk.safetensors").write_bytes(b"nope")
    with pytest.raises(HyperfitError, match="cannot read the logit bias"):
        load_logit_bias(tmp_path / "junk.safetensors")


def test_mean_shift_is_the_mean_log_prob_difference(lm):
    model, prompts = lm
    other = LlamaForCausalLM(model.config).eval()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        other.lm_head.weight.mul_(2)
    tokens = generate_tokens(model, prompts, 6, progress=False)
    shift = mean_log_prob_shift(model, other, tokens, prompts.shape[1], batch_size=2)
    with torch.no_grad():
        a = torch.log_softmax(model(input_ids=tokens[:, :-1]).logits[:, prompts.shape[1] - 1:], -1)
        b = torch.log_softmax(other(input_ids=tokens[:, :-1]).logits[:, prompts.shape[1] - 1:], -1)
    assert torch.allclose(shift, (b - a).mean(dim=(0, 1)), atol=1e-5)


def test_scoring_leaves_grad_mode_as_it_was(lm):
    """The scoring generators once left torch's grad mode off for the caller (and every later training step)."""
    model, prompts = lm
    tokens = generate_tokens(model, prompts, 6, progress=False)
    assert torch.is_grad_enabled()
    mean_log_prob_shift(model, model, tokens, prompts.shape[1], batch_size=2)
    token_ranks(model, tokens, prompts.shape[1], batch_size=2)
    assert torch.is_grad_enabled()
