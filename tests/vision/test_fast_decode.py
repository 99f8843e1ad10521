import pytest
import torch
from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling

from hyperfit_core.blocker import CitationBlocker
from hyperfit_core.decoding import DecodingConfig, generate_tokens
from hyperfit_core.errors import HyperfitError
from hyperfit_vision.attention import use_fused_attention
from tests.vision.oracle import complete_images, record_engine_batches
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
    assert fast_blocker.stats() == core_blocker.stats() and core_blocker.steps_top1_banned > 0


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
            assert (engine.step_at(ids[:, position], position, mode) - full[:, position]).abs().max() < 1e-5


def test_masked_windows_give_the_same_tokens_as_slice_and_hf(monkeypatch):
    import hyperfit_vision.fast_decode as fd

    monkeypatch.setattr(fd, "WINDOW", 8)  # several windows in a 64-position model, one ending mid-prompt
    model = _model()
    tokens = _tokens(3)
    engine = fd.StaticImageGPT(model, 3, 63)
    assert [engine.window(p) for p in (0, 7, 8, 62)] == [8, 8, 16, 63]
    masked = fast_complete_images(model, tokens, 3, 8, progress=False, mode="masked")
    assert torch.equal(masked, fast_complete_images(model, tokens, 3, 8, progress=False, mode="slice"))
    prompt = tokens[:, :25]
    with torch.no_grad():
        hf = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=40,
                            do_sample=False)
    assert torch.equal(masked, hf[:, 1:])


def test_auto_mode_and_precision_resolve_per_device():
    from hyperfit_core.decoding import decode_dtype
    from hyperfit_vision.fast_decode import resolve_mode

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_mode("auto", cpu) == "slice" and resolve_mode("auto", cuda) == "graph"
    assert resolve_mode("masked", cuda) == "masked" and resolve_mode("slice", cuda) == "slice"
    assert decode_dtype("auto", cpu) == torch.float32 and decode_dtype("auto", cuda) == torch.bfloat16
    assert decode_dtype("fp32", cuda) == torch.float32 and decode_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(HyperfitError, match="precision"):
        fast_complete_images(_model(), _tokens(), 2, 8, progress=False, precision="fp16")


@pytest.mark.parametrize("mode", ["slice", "masked"])
def test_bf16_decoding_tracks_fp32_and_leaves_the_model_fp32(mode):
    from hyperfit_vision.fast_decode import StaticImageGPT

    model = _model()
    ids = _tokens(3)[:, :20]
    fp32, bf16 = StaticImageGPT(model, 3, 20), StaticImageGPT(model, 3, 20, dtype=torch.bfloat16)
    assert bf16.cache.dtype == torch.bfloat16 and bf16.layers[0][2][0].dtype == torch.bfloat16
    with torch.no_grad():
        a, b = fp32.prefill(ids[:, :12]), bf16.prefill(ids[:, :12])
        for position in range(12, 20):
            a, b = fp32.step_at(ids[:, position], position, mode), bf16.step_at(ids[:, position], position, mode)
            assert b.dtype == torch.bfloat16
            assert (a - b.float()).abs().max() < 0.05 * a.abs().max()
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    out = fast_complete_images(model, _tokens(), 2, 8, progress=False, precision="bf16", mode=mode)
    assert out.shape == (5, 64) and int(out.max()) < SOS


def test_batch_size_none_is_auto_and_an_int_is_exact(monkeypatch):
    import hyperfit_vision.fast_decode as fd

    model, cpu = _model(), torch.device("cpu")
    seen = record_engine_batches(monkeypatch)
    tokens = _tokens(5)
    auto = fast_complete_images(model, tokens, 2, 8, progress=False)
    assert torch.equal(auto, fast_complete_images(model, tokens, 2, 8, batch_size=2, progress=False))
    assert torch.equal(auto, fast_complete_images(model, tokens, 2, 8, batch_size=100, progress=False))
    assert seen == [5, 2, 5]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(HyperfitError, match="batch size"):
            fast_complete_images(model, tokens, 2, 8, batch_size=bad, progress=False)
    # auto shrinks to what fits; an explicit size wins over the memory estimate
    per_sequence = 2 * 2 * 32 * 63 * 4 + 17 * 32 * 16 * 4
    monkeypatch.setattr(fd, "free_memory", lambda device: int(3.5 * per_sequence / fd.MEMORY_FRACTION))
    assert fd.plan_batch_size(model, 100, 17, 63, None, torch.float32, cpu) == 3
    assert fd.plan_batch_size(model, 100, 17, 63, 50, torch.float32, cpu) == 50
    assert fd.plan_batch_size(model, 2, 17, 63, None, torch.float32, cpu) == 2
    monkeypatch.setattr(fd, "free_memory", lambda device: 0)
    assert fd.plan_batch_size(model, 100, 17, 63, None, torch.float32, cpu) == 1


def test_auto_batch_is_the_same_after_an_engine_came_and_went(monkeypatch):
    import hyperfit_vision.fast_decode as fd
    from types import SimpleNamespace

    gib = 2**30
    state = {"free": 10 * gib, "reserved": 0, "allocated": 0}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (state["free"], 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: state["reserved"])
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: state["allocated"])
    cuda = torch.device("cuda")
    # ImageGPT-Large's shape (no weights needed to plan): ~0.33 GB per bf16 sequence of 1024 positions
    large = SimpleNamespace(config=SimpleNamespace(n_layer=48, n_embd=1536), parameters=lambda: iter(()))
    before = fd.plan_batch_size(large, 10**6, 257, 1024, None, torch.bfloat16, cuda)
    # the same card after one engine's 6 GiB buffer was freed: PyTorch keeps it reserved
    state.update(free=4 * gib, reserved=6 * gib, allocated=0)
    after = fd.plan_batch_size(large, 10**6, 257, 1024, None, torch.bfloat16, cuda)
    assert before == after == 22


def test_a_failed_graph_capture_falls_back_to_slice_under_auto_and_raises_under_graph(monkeypatch):
    """The capture itself needs CUDA (tests/gpu); what happens when it fails is decided on any device."""
    from hyperfit_core.decoding import decode
    from hyperfit_vision.fast_decode import StaticImageGPT

    model, tokens = _model(), _tokens(3)

    def failed_capture(b, window):
        raise RuntimeError("capture failed: unsupported kernel\n(details)")

    engine = StaticImageGPT(model, 3, 64)
    engine.mode = "graph"  # what "auto" resolves to on CUDA
    monkeypatch.setattr(engine, "_graph", failed_capture)
    with pytest.warns(UserWarning, match="capture failed: unsupported kernel\\); decoding with mode 'slice'"):
        out = decode(engine, tokens[:, :17], 48, progress=False)
    assert engine.mode == "slice"
    assert torch.equal(out[:, 1:], fast_complete_images(model, tokens, 2, 8, mode="slice", progress=False))
    explicit = StaticImageGPT(model, 3, 64, mode="slice")
    explicit.requested_mode = explicit.mode = "graph"  # what an explicit "graph" is on CUDA
    monkeypatch.setattr(explicit, "_graph", failed_capture)
    with pytest.raises(RuntimeError, match="capture failed"):
        decode(explicit, tokens[:, :17], 48, progress=False)
