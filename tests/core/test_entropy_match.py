"""Entropy-matched temperature: bisection finds the base's T whose mean held-out entropy equals a target."""

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hyperfit_core.analysis import prediction_stats
from hyperfit_core.entropy_match import (HeldOutEntropy, entropy_matched_temperature, match_temperature,
                                         tempered_entropy)
from hyperfit_core.errors import HyperfitError


@pytest.fixture(scope="module")
def tiny_lm():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(20)  # a random init is near-uniform; spread its logits so T matters
    ids = torch.randint(0, 50, (6, 20), generator=torch.Generator().manual_seed(1))
    return model, ids


def test_entropy_at_1_is_the_analysis_entropy(tiny_lm):
    model, ids = tiny_lm
    entropy = HeldOutEntropy(model, ids, 8, batch_size=4)
    assert entropy(1.0) == pytest.approx(float(prediction_stats(model, ids, 8)["entropy"].double().mean()), abs=1e-5)
    assert entropy.positions == 6 * 12


@pytest.mark.parametrize("true_t", [0.3, 0.8, 2.5])
def test_found_temperature_reproduces_the_target(tiny_lm, true_t):
    model, ids = tiny_lm
    target = HeldOutEntropy(model, ids, 8)(true_t)
    match, _ = entropy_matched_temperature(model, ids, 8, target, tolerance=1e-4)
    assert abs(match.entropy_at_temperature - target) <= 1e-4
    assert abs(HeldOutEntropy(model, ids, 8)(match.temperature) - target) <= 1e-4  # recomputed, not just reported
    assert match.temperature == pytest.approx(true_t, rel=0.02)
    assert (match.temperature < 1) == (target < match.base_entropy_at_1)  # a sharper target needs T < 1
    lo, hi = match.bracket
    assert lo <= match.temperature <= hi


def test_a_scaled_head_is_matched_by_the_inverse_temperature(tiny_lm):
    """A head scaled by 3 gives logits 3z = z / (1/3): the hyperfitted-like model's entropy is the base's at 1/3."""
    model, ids = tiny_lm
    sharp = LlamaForCausalLM(model.config).eval()
    sharp.load_state_dict(model.state_dict())
    with torch.no_grad():
        sharp.lm_head.weight.mul_(3)
    target = float(prediction_stats(sharp, ids, 8)["entropy"].double().mean())
    match, _ = entropy_matched_temperature(model, ids, 8, target, tolerance=1e-5)
    assert match.temperature < 1 and match.temperature == pytest.approx(1 / 3, rel=1e-3)


def test_recomputing_without_a_cache_gives_the_same_entropy(tiny_lm):
    model, ids = tiny_lm
    cached, uncached = HeldOutEntropy(model, ids, 8), HeldOutEntropy(model, ids, 8, cache_bytes=0)
    assert cached._cache is not None and uncached._cache is None
    assert cached(0.7) == pytest.approx(uncached(0.7), abs=1e-9)


def test_unreachable_targets_are_refused():
    flat = lambda t: min(1.0, t)  # noqa: E731 - an entropy that never exceeds 1 nat
    with pytest.raises(HyperfitError, match="above the base model's"):
        match_temperature(flat, 2.0)
    with pytest.raises(HyperfitError, match="below the base model's"):
        match_temperature(lambda t: 0.5 + t, 0.1)
    with pytest.raises(HyperfitError, match="finite"):
        match_temperature(flat, math.nan)


def test_tempered_entropy_limits():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    assert float(tempered_entropy(logits, 1e-3)) == pytest.approx(0.0, abs=1e-6)
    assert float(tempered_entropy(logits, 1e4)) == pytest.approx(math.log(4), abs=1e-3)
