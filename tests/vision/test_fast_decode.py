import pytest
import torch
from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling

from hyperfit_core.blocker import CitationBlocker
from hyperfit_core.decoding import DecodingConfig, generate_tokens
from hyperfit_core.errors import HyperfitError
from hyperfit_vision.attention import use_fused_attention
from tests.vision.oracle import complete_images
from hyperfit_vision.fast_decode import fast_complete_images, fast_generate_tokens

SOS = 27


def _model(**overrides):
    torch.manual_seed(0)
    config = {"vocab_size": 28, "n_positions": 64, "n_embd": 32, "n_layer": 2, "n_head": 4, "attn_pdrop": 0.0,
              "resid_pdrop": 0.0, "embd_pdrop": 0.0}
    config.update(overrides)
    return ImageGPTForCausalImageModeling(ImageGPTConfig(**config)).eval()


def _tokens(n=5, seed=0):
    pixels = torch.randint(0, SOS, (n, 64), generator=torch.Generator().manual_seed(seed))
    return torch.cat([torch.full((n, 1), SOS), pixels], dim=1)


MODELS = [{}, {"scale_attn_by_inverse_layer_idx": True}, {"reorder_and_upcast_attn": True, "n_layer": 3}]


@pytest.mark.parametrize("overrides", MODELS)
@pytest.mark.parametrize("mode", ["slice", "masked"])
def test_greedy_tokens_equal_hf_generate_and_complete_images(overrides, mode):
    model = _model(**overrides)
    tokens = _tokens()
    prompt = tokens[:, :17]
    with torch.no_grad():  # stock HF: eager attention, its own cache; SOS is no padding, so pass the mask
        hf = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=48,
                            do_sample=False)
    fast = fast_complete_images(model, tokens, 2, 8, batch_size=2, progress=False, mode=mode)
    assert fast.shape == (5, 64)
    assert torch.equal(fast, hf[:, 1:])
    use_fused_attention(model)
    assert torch.equal(fast, complete_images(model, tokens, 2, 8, progress=False))


def test_whole_image_from_sos_uses_every_position():
    model = _model()
    prompt = _tokens(3)[:, :1]
    assert torch.equal(fast_generate_tokens(model, prompt, 64, progress=False),
                       generate_tokens(model, prompt, 64, progress=False))
    with pytest.raises(HyperfitError, match="positions"):
        fast_generate_tokens(model, prompt, 65, progress=False)


def test_blocker_gives_the_same_tokens_and_firings_as_the_core_loop():
    model = _model()
    tokens = _tokens(4)
    # train on the model's own greedy completions, so the blocker must fire and change them
    train = generate_tokens(model, tokens[:, :17], 48, progress=False)
    core_blocker, fast_blocker = CitationBlocker(train, n=3), CitationBlocker(train, n=3)
    core = complete_images(model, tokens, 2, 8, processors=[core_blocker], progress=False)
    fast = fast_complete_images(model, tokens, 2, 8, processors=[fast_blocker], batch_size=3, progress=False)
    assert torch.equal(core, fast)
    assert not torch.equal(fast, train[:, 1:])
    assert fast_blocker.fired == core_blocker.fired > 0


def test_seeded_sampling_is_reproducible_and_matches_the_core_loop():
    model = _model()
    tokens = _tokens(4)
    config = DecodingConfig.paper_top_p(seed=7)
    a = fast_complete_images(model, tokens, 2, 8, decoding=config, progress=False)
    b = fast_complete_images(model, tokens, 2, 8, decoding=config, progress=False, mode="masked")
    assert torch.equal(a, b)
    assert torch.equal(a, complete_images(model, tokens, 2, 8, decoding=config, progress=False))
    other = fast_complete_images(model, tokens, 2, 8, decoding=DecodingConfig.paper_top_p(seed=8), progress=False)
    assert not torch.equal(a, other)


def test_bad_arguments_are_clear_errors():
    model = _model()
    with pytest.raises(HyperfitError, match="prefix"):
        fast_complete_images(model, _tokens(), 8, 8, progress=False)
    with pytest.raises(HyperfitError, match="SOS"):
        fast_complete_images(model, _tokens()[:, 1:], 2, 8, progress=False)
    with pytest.raises(HyperfitError, match="CUDA"):
        fast_complete_images(model, _tokens(), 2, 8, progress=False, mode="graph")
    with pytest.raises(HyperfitError, match="mode"):
        fast_complete_images(model, _tokens(), 2, 8, progress=False, mode="fast")


def test_training_mode_is_restored():
    model = _model().train()
    fast_complete_images(model, _tokens(2), 6, 8, progress=False)
    assert model.training


@pytest.mark.parametrize("overrides", MODELS)
def test_prefill_and_step_logits_match_hf_forward(overrides):
    from hyperfit_vision.fast_decode import StaticImageGPT

    model = _model(**overrides)
    ids = _tokens(3)[:, :40]
    engine = StaticImageGPT(model, 3, 40)
    with torch.no_grad():
        full = model(input_ids=ids).logits
        assert (engine.prefill(ids[:, :30]) - full[:, 29]).abs().max() < 1e-5
        for position in range(30, 40):
            mode = "slice" if position % 2 else "masked"
            assert (engine.step(ids[:, position], position, mode) - full[:, position]).abs().max() < 1e-5
