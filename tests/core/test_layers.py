"""Layer by layer: participation ratio, relative weight change per block, and the last-K-blocks swap."""

import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from hyperfit_core.errors import HyperfitError
from hyperfit_core.layers import (block_list, covariance_of, hidden_state_dimensions, parameter_groups, parse_last,
                                  participation_ratio, relative_weight_changes, swap_last_blocks)


def test_participation_ratio_of_isotropic_data_is_about_its_dimension():
    x = torch.randn(20000, 16, generator=torch.Generator().manual_seed(0))
    assert participation_ratio(covariance_of(x)) == pytest.approx(16, rel=0.02)


def test_participation_ratio_of_rank_one_data_is_one():
    direction = torch.randn(16, generator=torch.Generator().manual_seed(1))
    x = torch.randn(500, 1, generator=torch.Generator().manual_seed(2)) * direction
    assert participation_ratio(covariance_of(x)) == pytest.approx(1.0, abs=1e-9)
    assert participation_ratio(torch.diag(torch.tensor([1.0, 1.0, 0.0, 0.0]))) == pytest.approx(2.0)


def llama(seed: int, layers: int = 3, hidden: int = 32) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=30, hidden_size=hidden, intermediate_size=64,
                                        num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1,
                                        max_position_embeddings=64)).eval()


def test_hidden_state_dimensions_match_a_direct_computation():
    model = llama(0)
    ids = torch.randint(0, 30, (4, 12), generator=torch.Generator().manual_seed(3))
    dims = hidden_state_dimensions(model, ids, 5, batch_size=3)
    assert len(dims) == 4  # embeddings + 3 blocks
    states = model(input_ids=ids[:, :-1], output_hidden_states=True).hidden_states
    direct = [participation_ratio(covariance_of(s[:, 4:].reshape(-1, 32).detach())) for s in states]
    assert dims == pytest.approx(direct, rel=1e-6)


def test_relative_change_is_zero_for_identical_models_and_names_every_block():
    a, b = llama(0), llama(0)
    changes = relative_weight_changes(a, b)
    assert set(changes) == {"block.0", "block.1", "block.2", "embeddings", "head", "other"}
    assert all(value == 0.0 for value in changes.values())
    with torch.no_grad():
        b.model.layers[2].mlp.up_proj.weight.mul_(1.5)
    changes = relative_weight_changes(a, b)
    assert changes["block.2"] > 0 and changes["block.0"] == changes["block.1"] == changes["head"] == 0


def test_tied_gpt2_head_counts_once_as_embeddings():
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=30, n_positions=32, n_embd=16, n_layer=2, n_head=2))
    groups = parameter_groups(model)
    assert block_list(model)[0] == "transformer.h" and "head" not in groups
    assert groups["embeddings"] == ["transformer.wte.weight"] and "transformer.wpe.weight" in groups["other"]


def test_swap_all_blocks_equals_the_donor_and_one_block_only_the_last():
    base, donor = llama(0), llama(1)
    original = {k: v.clone() for k, v in base.state_dict().items()}
    assert swap_last_blocks(base, donor, 1) == [2]
    state = base.state_dict()
    for key, value in state.items():
        expected = donor.state_dict()[key] if key.startswith("model.layers.2.") else original[key]
        assert torch.equal(value, expected), key
    base = llama(0)
    assert swap_last_blocks(base, donor, parse_last("all", 3)) == [0, 1, 2]
    for key, value in base.state_dict().items():
        expected = donor.state_dict()[key] if key.startswith("model.layers.") else original[key]
        assert torch.equal(value, expected), key
    assert all(v == 0 for k, v in relative_weight_changes(base, donor).items() if k.startswith("block."))


def test_swap_refuses_bad_k_and_other_shapes():
    for value in ("0", "4", "-1", "two"):
        with pytest.raises(HyperfitError, match="--last"):
            parse_last(value, 3)
    with pytest.raises(HyperfitError, match="differ in shape"):
        swap_last_blocks(llama(0), llama(0, hidden=64), 1)
    with pytest.raises(HyperfitError, match="differ in shape"):
        swap_last_blocks(llama(0), llama(0, layers=2), 1)
