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


class BigramEngine:
    """A DecodeEngine with exact, model-free logits: row `last token` of a fixed table."""

    autocast_dtype = None
    device = torch.device("cpu")

    def __init__(self, table, max_batch, max_positions=None):
        self.table, self.max_batch, self.max_positions = table, max_batch, max_positions
        self.model = torch.nn.Module()
        self.prefills = []

    def prefill(self, ids):
        assert not self.model.training  # the loop decodes in eval mode
        self.prefills.append(tuple(ids.shape))
        return self.table[ids[:, -1]]

    def step(self, token):
        return self.table[token]


def _table(vocab=12):
    return torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(1)) * 3


def test_the_loop_samples_from_one_seeded_generator_batch_by_batch():
    from hyperfit_core.decoding import build_processors, decode

    table, prompts = _table(), _prompts(7, 3) % 12
    config = DecodingConfig.paper_top_p(seed=5)
    engine = BigramEngine(table, max_batch=3)
    engine.model.train()
    ours = decode(engine, prompts, 10, config, progress=False)
    assert engine.prefills == [(3, 3), (3, 3), (1, 3)] and engine.model.training
    # by hand: one generator for the whole call, one draw per step over the batch
    generator, processors, rows = torch.Generator().manual_seed(5), build_processors(config), []
    for first in range(0, 7, 3):
        tokens = prompts[first:first + 3]
        for _ in range(10):
            scores = processors(tokens, table[tokens[:, -1]])
            draw = torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator)
            tokens = torch.cat([tokens, draw], dim=1)
        rows.append(tokens)
    assert torch.equal(ours, torch.cat(rows))


def test_greedy_decoding_of_a_slice_of_prompts_gives_those_rows(model):
    """What splitting the prompts over processes relies on: a row's tokens do not depend on its neighbours."""
    from hyperfit_core.decoding import HFCacheEngine, decode

    prompts = _prompts(7)
    whole = decode(HFCacheEngine(model, 3), prompts, 12, progress=False)
    assert torch.equal(decode(HFCacheEngine(model, 3), prompts[2:6], 12, progress=False), whole[2:6])
    bigram = BigramEngine(_table(), max_batch=2)
    assert torch.equal(decode(bigram, prompts[3:] % 12, 5, progress=False),
                       decode(bigram, prompts % 12, 5, progress=False)[3:])


def test_the_loop_checks_the_request_against_the_engine():
    from hyperfit_core.decoding import decode

    engine = BigramEngine(_table(), max_batch=2, max_positions=10)
    assert decode(engine, _prompts(2, 4) % 12, 7, progress=False).shape == (2, 11)  # reads 4 + 7 - 1 = 10
    with pytest.raises(HyperfitError, match="needs 11 positions; the model has 10"):
        decode(engine, _prompts(2, 4) % 12, 8, progress=False)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(HyperfitError, match="max_new_tokens"):
            decode(engine, _prompts(2, 4) % 12, bad, progress=False)
    with pytest.raises(HyperfitError, match="2-D"):
        decode(engine, torch.zeros(3, 0, dtype=torch.long), 2, progress=False)
