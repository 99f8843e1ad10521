"""Image completion on CUDA: the graph step gives slice's and HF's tokens; auto picks graph + bf16; sizing."""

import pytest
import torch
from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling

import hyperfit_vision.fast_decode as fd
from hyperfit_core.decoding import DecodingConfig
from hyperfit_core.device import free_memory
from hyperfit_vision.fast_decode import fast_complete_images
from tests.vision.oracle import record_engine_batches

SOS = 27
MODELS = [{}, {"scale_attn_by_inverse_layer_idx": True}, {"reorder_and_upcast_attn": True, "n_layer": 3}]


def _model(device, **overrides):
    torch.manual_seed(0)
    config = {"vocab_size": 28, "n_positions": 64, "n_embd": 32, "n_layer": 2, "n_head": 4, "attn_pdrop": 0.0,
              "resid_pdrop": 0.0, "embd_pdrop": 0.0}
    config.update(overrides)
    return ImageGPTForCausalImageModeling(ImageGPTConfig(**config)).to(device).eval()


def _tokens(n=5, seed=0, side=8, sos=SOS):
    pixels = torch.randint(0, sos, (n, side * side), generator=torch.Generator().manual_seed(seed))
    return torch.cat([torch.full((n, 1), sos), pixels], dim=1)


@pytest.fixture
def small_window(monkeypatch):
    monkeypatch.setattr(fd, "WINDOW", 16)  # several graphs per batch in a 64-position model


@pytest.mark.parametrize("overrides", MODELS)
def test_graph_tokens_equal_slice_and_hf_generate(cuda, small_window, overrides):
    model = _model(cuda, **overrides)
    tokens = _tokens(5)
    prompt = tokens[:, :17].to(cuda)
    with torch.no_grad():
        hf = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=48,
                            do_sample=False).cpu()
    # batch 2 of 5: the last batch (1) captures its own graphs
    graph = fast_complete_images(model, tokens, 2, 8, batch_size=2, progress=False, mode="graph", precision="fp32")
    slice_ = fast_complete_images(model, tokens, 2, 8, batch_size=2, progress=False, mode="slice", precision="fp32")
    assert torch.equal(graph, slice_)
    assert torch.equal(graph, hf[:, 1:])


def test_graph_sampling_is_seeded_like_slice(cuda, small_window):
    model = _model(cuda)
    config = DecodingConfig.paper_top_p(seed=3)
    kwargs = dict(decoding=config, progress=False, precision="fp32")
    a = fast_complete_images(model, _tokens(4), 2, 8, mode="graph", **kwargs)
    assert torch.equal(a, fast_complete_images(model, _tokens(4), 2, 8, mode="graph", **kwargs))
    assert torch.equal(a, fast_complete_images(model, _tokens(4), 2, 8, mode="slice", **kwargs))


def test_auto_is_graph_in_bf16_and_agrees_with_the_eager_bf16_step(cuda, small_window, monkeypatch):
    model = _model(cuda)
    captured = []
    real_graph = fd.StaticImageGPT._graph

    def spy(self, b, window):
        captured.append((self.dtype, b, window))
        return real_graph(self, b, window)

    monkeypatch.setattr(fd.StaticImageGPT, "_graph", spy)
    tokens = _tokens(6)
    auto = fast_complete_images(model, tokens, 2, 8, progress=False)
    assert captured and {dtype for dtype, _, _ in captured} == {torch.bfloat16}
    masked = fast_complete_images(model, tokens, 2, 8, progress=False, mode="masked", precision="bf16")
    # the graph replays the masked bf16 step; allow a rare near-tie flip
    assert (auto == masked).float().mean() > 0.95
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    # bf16 logits track fp32's (tokens may part at a near tie, after which whole rows differ)
    ids = tokens[:, :40].to(cuda)
    fp32, bf16 = fd.StaticImageGPT(model, 6, 40), fd.StaticImageGPT(model, 6, 40, dtype=torch.bfloat16)
    with torch.no_grad():
        a, b = fp32.prefill(ids[:, :30]), bf16.prefill(ids[:, :30])
        for position in range(30, 40):
            a, b = fp32.step_at(ids[:, position], position, "graph"), bf16.step_at(ids[:, position], position, "graph")
            assert (a - b.float()).abs().max() < 0.05 * a.abs().max()


def test_two_engines_in_a_row_keep_their_batch_size(cuda, monkeypatch):
    # a model whose KV buffer is large enough (~25 MB per sequence in bf16) for memory to set the batch
    torch.manual_seed(0)
    model = ImageGPTForCausalImageModeling(ImageGPTConfig(vocab_size=513, n_positions=1024, n_embd=512, n_layer=8,
                                                          n_head=8)).to(cuda).eval()
    sizes = record_engine_batches(monkeypatch)
    tokens = _tokens(64, side=32, sos=512)
    # leave ~2 GiB free: auto must pick fewer than the 64 images, the same number both times
    hog = torch.empty(free_memory(cuda) - 2 * 2**30, dtype=torch.uint8, device=cuda)
    try:
        for _ in range(2):
            fast_complete_images(model, tokens, 24, 32, progress=False)
        explicit = fast_complete_images(model, tokens[:8], 24, 32, batch_size=3, progress=False)
    finally:
        del hog
        torch.cuda.empty_cache()
    assert sizes[0] == sizes[1] < 64
    assert sizes[2] == 3 and explicit.shape == (8, 1024)
