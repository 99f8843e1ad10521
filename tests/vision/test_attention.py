import torch
from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling

from hyperfit_core.decoding import generate_tokens
from hyperfit_vision.attention import use_eager_attention, use_fused_attention


def _model(**overrides):
    torch.manual_seed(0)
    config = dict(vocab_size=28, n_positions=64, n_embd=32, n_layer=3, n_head=4, attn_pdrop=0.0, resid_pdrop=0.0,
                  embd_pdrop=0.0)
    config.update(overrides)
    return ImageGPTForCausalImageModeling(ImageGPTConfig(**config)).eval()


def test_fused_attention_matches_hf_eager_logits_and_greedy_tokens():
    for overrides in ({}, {"scale_attn_by_inverse_layer_idx": True, "reorder_and_upcast_attn": True}):
        model = _model(**overrides)
        ids = torch.randint(0, 27, (3, 64), generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            eager = model(input_ids=ids).logits
            use_fused_attention(model)
            fused = model(input_ids=ids).logits
        assert (fused - eager).abs().max() < 1e-5
        prompt = torch.cat([torch.full((3, 1), 27), ids[:, :16]], dim=1)
        fused_tokens = generate_tokens(model, prompt, 40, progress=False)
        use_eager_attention(model)
        assert torch.equal(fused_tokens, generate_tokens(model, prompt, 40, progress=False))


def test_fused_attention_gradients_match_eager():
    model = _model()
    ids = torch.randint(0, 27, (2, 33), generator=torch.Generator().manual_seed(2))
    model(input_ids=ids).logits.square().mean().backward()
    eager = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    use_fused_attention(model)
    model(input_ids=ids).logits.square().mean().backward()
    for a, p in zip(eager, model.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-6)
