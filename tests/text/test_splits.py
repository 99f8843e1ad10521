import pytest
import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_text.model import load_text_model
from hyperfit_text.splits import Corpus, place_spans, sample_splits, spans_disjoint, tokenize_corpus

from .conftest import synthetic_documents


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    return load_text_model(str(tiny_llama_dir))


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2_text_dir):
    return load_text_model(str(tiny_gpt2_text_dir))


def _positions(starts, length):
    return {int(s) + i for s in starts for i in range(length)}


@pytest.mark.parametrize("seed", range(20))
def test_place_spans_never_overlap_and_stay_inside(seed):
    lengths = torch.randint(1, 30, (25,), generator=torch.Generator().manual_seed(seed))
    total = int(lengths.sum()) + seed * 7  # includes the tight case free == 0
    starts = place_spans(total, lengths, seed)
    assert spans_disjoint(starts, lengths)
    assert int(starts.min()) >= 0 and int((starts + lengths).max()) <= total


def test_windows_are_exactly_256_tokens_with_one_bos_and_disjoint_from_prompts(llama):
    corpus = tokenize_corpus(synthetic_documents(400, seed=1), llama)
    train, held = sample_splits(corpus, llama.bos_id, num_train=30, window=256, num_eval=12, context=32,
                                reference=96, seed=3)
    assert train.ids.shape == (30, 257)
    assert held.contexts.shape == (12, 32) and held.references.shape == (12, 96)
    assert (train.ids[:, 0] == llama.bos_id).all() and not (train.ids[:, 1:] == llama.bos_id).any()
    # every row is the stream at its recorded start, and no token position is shared
    for row, start in zip(train.ids, train.source_index):
        assert torch.equal(row[1:], corpus.ids[start:start + 256])
    for context, reference, start in zip(held.contexts, held.references, held.starts):
        assert torch.equal(torch.cat([context, reference]), corpus.ids[start:start + 128])
    train_positions = _positions(train.source_index, 256)
    held_positions = _positions(held.starts, 128)
    assert len(train_positions) == 30 * 256 and len(held_positions) == 12 * 128
    assert not train_positions & held_positions


def test_sampling_is_seeded(llama):
    corpus = tokenize_corpus(synthetic_documents(200), llama)
    a = sample_splits(corpus, llama.bos_id, 10, 64, 5, 32, 32, seed=0)
    b = sample_splits(corpus, llama.bos_id, 10, 64, 5, 32, 32, seed=0)
    c = sample_splits(corpus, llama.bos_id, 10, 64, 5, 32, 32, seed=1)
    assert torch.equal(a[0].ids, b[0].ids) and torch.equal(a[1].contexts, b[1].contexts)
    assert not torch.equal(a[0].source_index, c[0].source_index)


@pytest.mark.parametrize("which", ["llama", "gpt2"])
def test_bos_exactly_once_whatever_the_tokenizer_does(which, llama, gpt2):
    model = {"llama": llama, "gpt2": gpt2}[which]
    assert model.adds_bos == (which == "llama")  # the Llama-like tokenizer adds <s>, the GPT-2-like one does not
    # literal special-token strings in the text stay text
    docs = [f"{model.tokenizer.bos_token} the river {model.tokenizer.eos_token} city"] + synthetic_documents(60)
    corpus = tokenize_corpus(docs, model)
    assert not (corpus.ids == model.bos_id).any()
    train, held = sample_splits(corpus, model.bos_id, 8, 40, 4, 32, 8, seed=0)
    assert ((train.ids == model.bos_id).sum(1) == 1).all() and (train.ids[:, 0] == model.bos_id).all()
    prompts = model.with_bos(held.contexts)
    assert ((prompts == model.bos_id).sum(1) == 1).all()


def test_corpus_cap_takes_random_documents(llama):
    docs = synthetic_documents(300)
    capped = tokenize_corpus(docs, llama, max_tokens=500, seed=0)
    assert len(capped.ids) == 500 and capped.documents < len(docs)
    assert not torch.equal(capped.ids, tokenize_corpus(docs, llama, max_tokens=500, seed=1).ids)


def test_text_shorter_than_one_window_is_an_error(llama):
    corpus = Corpus(torch.arange(2, 100), 1, 1)
    with pytest.raises(HyperfitError, match="only 98 tokens, shorter than one 256-token window"):
        sample_splits(corpus, llama.bos_id, 1, 256, 1, 32, 32, seed=0)
    with pytest.raises(HyperfitError, match="need .* distinct token positions"):
        sample_splits(corpus, llama.bos_id, 2, 64, 1, 32, 32, seed=0)
    with pytest.raises(HyperfitError, match="--num-eval must be at least 1"):
        sample_splits(corpus, llama.bos_id, 1, 64, 0, 32, 32, seed=0)
