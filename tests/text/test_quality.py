"""MAUVE and fluency under an independent model (issue 26), on tiny models built here: MAUVE is mauve-text's own
number on our features, its extremes behave, perplexity matches a hand computation, and the per-text caches spare
the model a second pass."""

import math

import mauve
import numpy as np
import pytest
import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_text.fluency import continuation_nll, fluency
from hyperfit_text.mauve_score import mauve_note, mauve_score
from hyperfit_text.scorer import length_batches, load_scorer
from hyperfit_text.text_cache import text_key
from hyperfit_text.text_features import cached_text_features, text_features

from .conftest import synthetic_documents


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    return load_scorer(str(tiny_llama_dir), device="cpu")


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2_text_dir):
    return load_scorer(str(tiny_gpt2_text_dir), device="cpu")


def counting_forwards(monkeypatch, module) -> list[int]:
    """Rows each forward of `module` was given, call by call."""
    calls: list[int] = []
    forward = module.forward

    def counted(*args, **kwargs):
        calls.append(len(kwargs.get("input_ids", args[0] if args else None)))
        return forward(*args, **kwargs)

    monkeypatch.setattr(module, "forward", counted)
    return calls


def test_mauve_is_mauve_text_on_the_same_features():
    rng = np.random.default_rng(0)
    generated, human = rng.normal(size=(50, 24)), rng.normal(0.3, 1.0, size=(40, 24))
    ours = mauve_score(generated, human, num_buckets=3, seed=7)
    direct = mauve.compute_mauve(p_features=human.astype(np.float32), q_features=generated.astype(np.float32),
                                 num_buckets=3, seed=7, verbose=False)
    assert ours["mauve"] == direct.mauve and ours["mauve_frontier_integral"] == direct.frontier_integral
    assert (ours["mauve_texts"], ours["mauve_human_texts"], ours["mauve_clusters"], ours["mauve_seed"],
            ours["mauve_feature_dim"]) == (50, 40, 3, 7, 24)


def test_mauve_of_a_set_against_itself_is_the_maximum_and_of_one_repeated_text_near_the_minimum(llama):
    varied = synthetic_documents(40, seed=3)
    features = text_features(llama, varied)
    repeated = text_features(llama, [varied[0]] * 40)
    same = mauve_score(features, features)
    assert same["mauve"] == pytest.approx(1.0) and same["mauve_clusters"] == 4  # "auto": 40 texts / 10
    assert mauve_score(repeated, features)["mauve"] < 0.05


def test_mauve_note_states_the_small_sample_caveat_with_the_counts():
    assert "40 texts per condition in 4 clusters" in mauve_note(40, 4) and "biased upward" in mauve_note(40, 4)
    assert "biased" not in mauve_note(5000, 500)


def test_features_are_the_mean_of_the_last_hidden_state_over_each_texts_own_tokens(llama):
    texts = synthetic_documents(5, seed=1) + ["Bridge."]
    batched = text_features(llama, texts, batch_size=4)  # right-padded batches of unequal lengths
    for text, row in zip(texts, batched):
        ids = llama.with_bos(torch.tensor([llama.encode([text])[0]]))
        with torch.no_grad():
            hidden = llama.model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
        np.testing.assert_allclose(row, hidden[1:].mean(0).numpy(), rtol=1e-4, atol=1e-5)


def test_features_are_cached_per_text_and_recomputed_only_for_new_texts(llama, tmp_path, monkeypatch):
    calls = counting_forwards(monkeypatch, llama.model.base_model)
    texts = synthetic_documents(6, seed=2)
    first = cached_text_features(llama, texts, tmp_path)
    assert sum(calls) == 6
    calls.clear()
    np.testing.assert_array_equal(cached_text_features(llama, texts[::-1], tmp_path), first[::-1])
    assert calls == []  # no forward at all
    extra = synthetic_documents(1, seed=9)
    mixed = cached_text_features(llama, [texts[0], *extra, *extra], tmp_path)
    assert calls == [1]  # only the new text, once although it appears twice
    np.testing.assert_allclose(mixed[1], text_features(llama, extra)[0], rtol=1e-5, atol=1e-6)
    calls.clear()
    cached_text_features(llama, texts[:2], tmp_path, max_tokens=3)  # other settings: other rows, not these
    assert sum(calls) == 2


def hand_perplexity(model, context: str, continuation: str, keep_context: int | None = None) -> float:
    """exp(mean NLL) of the continuation's tokens, log-softmax written out: x - log(sum(exp(x)))."""
    context_ids = model.encode([context])[0]
    if keep_context is not None:
        context_ids = context_ids[len(context_ids) - keep_context:]
    continuation_ids = model.encode([continuation])[0]
    ids = torch.tensor([[model.bos_id, *context_ids, *continuation_ids]])
    with torch.no_grad():
        logits = model.model(input_ids=ids).logits[0].double()
    nll = 0.0
    for j, token in enumerate(continuation_ids):
        row = logits[len(context_ids) + j]  # the position just before the token predicts it
        nll -= (row[token] - torch.log(torch.exp(row).sum())).item()
    return math.exp(nll / len(continuation_ids))


def test_fluency_is_the_hand_computed_perplexity_of_the_continuation_given_its_context(gpt2):
    docs = synthetic_documents(7, seed=4)
    contexts = [doc[:40] for doc in docs] + [""]
    continuations = [doc[40:200] for doc in docs] + ["The river."]
    result = fluency(gpt2, contexts, continuations, batch_size=3)
    expected = [hand_perplexity(gpt2, c, t) for c, t in zip(contexts, continuations)]
    np.testing.assert_allclose(result["fluency_perplexity_per_text"], expected, rtol=1e-5)
    assert result["fluency_perplexity"] == pytest.approx(np.mean(expected), rel=1e-5)
    assert result["fluency_texts"] == 8
    assert result["fluency_tokens"] == sum(len(ids) for ids in gpt2.encode(continuations))


def test_fluency_drops_the_oldest_context_tokens_that_do_not_fit_the_scorer(gpt2):
    context, continuation = " ".join(synthetic_documents(6, seed=5)), " The old bridge under the tower."
    room = 128 - 1 - len(gpt2.encode([continuation])[0])  # the tiny GPT-2 reads 128 positions
    assert len(gpt2.encode([context])[0]) > room
    result = fluency(gpt2, [context], [continuation])
    expected = hand_perplexity(gpt2, context, continuation, keep_context=room)
    assert result["fluency_perplexity_per_text"][0] == pytest.approx(expected, rel=1e-5)


def test_fluency_is_cached_per_context_and_continuation(gpt2, tmp_path, monkeypatch):
    calls = counting_forwards(monkeypatch, gpt2.model)
    contexts, continuations = ["A river.", "A city."], [" The bell rang.", " The bell rang."]
    first = fluency(gpt2, contexts, continuations, tmp_path)
    assert sum(calls) == 2 and [p.name.startswith("fluency-") for p in tmp_path.iterdir()] == [True]
    calls.clear()
    assert fluency(gpt2, contexts, continuations, tmp_path) == first and calls == []
    fluency(gpt2, ["A road."], [" The bell rang."], tmp_path)  # same continuation, new context: a new pair
    assert calls == [1]


def test_empty_texts_and_mismatched_inputs_are_refused_with_one_line(gpt2):
    with pytest.raises(HyperfitError, match="continuation 1 is empty"):
        continuation_nll(gpt2, ["a", "b"], ["The river.", ""])
    with pytest.raises(HyperfitError, match="2 contexts for 1 continuations"):
        fluency(gpt2, ["a", "b"], ["The river."])
    with pytest.raises(HyperfitError, match="text 0 is empty"):
        text_features(gpt2, ["", "The river."])
    with pytest.raises(HyperfitError, match="one width"):
        mauve_score(np.zeros((4, 3)), np.zeros((4, 5)))


def test_length_batches_cover_every_index_once_within_both_bounds():
    lengths = [5, 300, 17, 17, 90, 1, 64, 64, 64, 2]
    groups = length_batches(lengths, batch_size=3, max_tokens=200)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    for group in groups:
        assert len(group) <= 3
        assert len(group) == 1 or len(group) * max(lengths[i] for i in group) <= 200


def test_text_keys_keep_the_parts_of_a_pair_apart():
    assert text_key("ab", "c") != text_key("a", "bc") and text_key("a") == text_key("a")


def test_a_missing_default_scorer_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/ here
    with pytest.raises(HyperfitError, match="default scoring model .* is not here: put google/gemma-3-270m"):
        load_scorer()
