import math

import nltk.translate.bleu_score as nltk_bleu  # the reference implementation (test extra)
import numpy as np
import pytest
import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_core.metrics import (dataset_bleu, dataset_bleu_scores, distinct_n, mean_seq_rep_n,
                                   mean_type_token_ratio, self_bleu, self_bleu_scores, seq_rep_n,
                                   type_token_ratio)


def nltk_sentence_bleu(refs, hyp, order=4):
    return nltk_bleu.sentence_bleu([list(r) for r in refs], list(hyp), weights=(1 / order,) * order,
                                   smoothing_function=nltk_bleu.SmoothingFunction().method1)


def nltk_self_bleu(seqs, order=4):
    return [nltk_sentence_bleu([s for j, s in enumerate(seqs) if j != i], h, order) for i, h in enumerate(seqs)]


# --- hand-computed values --------------------------------------------------------------------------------

def test_type_token_ratio_by_hand():
    assert type_token_ratio([1, 2, 2, 3]) == 0.75
    assert type_token_ratio(torch.tensor([5, 5, 5, 1, 2]), last=3) == 1.0   # last 3 = [5, 1, 2]
    assert type_token_ratio([7, 7], last=10) == 0.5                          # shorter than `last`: all
    assert mean_type_token_ratio([[1, 1], [1, 2]]) == 0.75
    assert mean_type_token_ratio(torch.tensor([[1, 1, 1, 1], [1, 2, 3, 4]]), last=2) == 0.75


def test_seq_rep_and_distinct_by_hand():
    # bigrams of 1 2 1 2 1: (1,2) (2,1) (1,2) (2,1) -> 2 distinct of 4
    assert seq_rep_n([1, 2, 1, 2, 1], 2) == 0.5
    assert seq_rep_n(np.arange(10), 4) == 0.0
    assert seq_rep_n([3, 3, 3, 3, 3], 4) == 0.5  # two 4-grams, both (3,3,3,3)
    assert mean_seq_rep_n([[1, 2, 1, 2, 1], [1, 2, 3]], 2) == 0.25
    # bigrams over both: (1,2) (2,3) | (1,2) -> 2 distinct of 3; a 1-token text has none
    assert distinct_n([[1, 2, 3], [1, 2], [9]], 2) == pytest.approx(2 / 3)


def test_undefined_values_raise():
    with pytest.raises(HyperfitError):
        type_token_ratio([])
    with pytest.raises(HyperfitError):
        seq_rep_n([1, 2], 3)
    with pytest.raises(HyperfitError):
        mean_type_token_ratio([])
    with pytest.raises(HyperfitError):
        self_bleu([[1, 2, 3]])
    with pytest.raises(HyperfitError):
        self_bleu([[1.5, 2.0], [1.0, 2.0]])
    with pytest.raises(HyperfitError):
        self_bleu([[1, 2], [1, 2]], smoothing="method7")
    with pytest.raises(HyperfitError):
        type_token_ratio(torch.zeros(2, 3, dtype=torch.long))


def test_self_bleu_by_hand():
    # hyp 1 2 3 4 5 against refs {1 2 3 9 9 9}: matches 3/5, 2/4, 1/3, 0 -> 0.1/2; closest ref length 6 > 5
    hyp, ref = [1, 2, 3, 4, 5], [1, 2, 3, 9, 9, 9]
    expected_hyp = math.exp(1 - 6 / 5) * math.exp((math.log(3 / 5) + math.log(2 / 4) + math.log(1 / 3)
                                                   + math.log(0.1 / 2)) / 4)
    # ref against {hyp}: matches 3/6, 2/5, 1/4, 0 -> 0.1/3; hyp (5) shorter than ref (6): no penalty
    expected_ref = math.exp((math.log(3 / 6) + math.log(2 / 5) + math.log(1 / 4) + math.log(0.1 / 3)) / 4)
    np.testing.assert_allclose(self_bleu_scores([hyp, ref]), [expected_hyp, expected_ref], rtol=1e-12)
    assert self_bleu([[1, 2, 3], [4, 5, 6]]) == 0.0          # no shared unigram
    assert self_bleu([[1, 2, 3, 4]] * 3) == pytest.approx(1.0)
    assert self_bleu([[], []]) == 0.0                        # nltk: no unigram match -> 0
    # all texts shorter than the order: no 3-/4-grams anywhere, each counts as 0.1 / 1
    assert self_bleu([[1, 2], [1, 2]]) == pytest.approx(0.1 ** 0.5)


def test_dataset_bleu_by_hand():
    train = [[1, 2, 3, 4], [7, 7, 7, 7, 7, 7]]
    scores, index = dataset_bleu_scores([[1, 2, 3, 4], [7, 7, 7], [5, 6]], train)
    # copy -> 1; (7 7 7) vs (7 x6): 1-3-grams all match, no 4-gram at all counts as 0.1 / max(1, 0)
    # (nltk's method1 quirk), brevity exp(1 - 6/3); no shared token -> 0
    np.testing.assert_allclose(scores, [1.0, math.exp(1 - 6 / 3) * 0.1 ** 0.25, 0.0], rtol=1e-12)
    assert index.tolist() == [0, 1, 0]
    assert dataset_bleu([[1, 2, 3, 4]], train) == pytest.approx(1.0)
    assert dataset_bleu([[]], [[]]) == 0.0


# --- against nltk ----------------------------------------------------------------------------------------

def _random_texts(rng, count, max_len, vocab):
    return [rng.integers(0, vocab, rng.integers(0, max_len + 1)).tolist() for _ in range(count)]


@pytest.mark.parametrize("order", [1, 2, 4])
def test_self_bleu_matches_nltk_on_random_small_texts(order):
    rng = np.random.default_rng(order)
    for _ in range(60):
        # tiny vocabularies give repeated tokens; tiny lengths give texts shorter than the order, empty
        # texts, equal-length ties and hypotheses without any higher-order match
        texts = _random_texts(rng, int(rng.integers(2, 7)), 10, int(rng.integers(1, 6)))
        np.testing.assert_allclose(self_bleu_scores(texts, order), nltk_self_bleu(texts, order), atol=1e-12)


def test_self_bleu_matches_nltk_on_longer_texts_and_tensor_input():
    rng = np.random.default_rng(0)
    texts = torch.as_tensor(rng.zipf(1.3, size=(12, 40)) % 50)
    expected = np.mean(nltk_self_bleu(texts.tolist()))
    assert self_bleu(texts) == pytest.approx(expected, abs=1e-9)


def test_closest_reference_length_tie_takes_the_shorter():
    # for the 4-token text the others are 3 and 5 tokens long: nltk picks 3, so no brevity penalty
    texts = [[1, 2, 3, 4], [1, 2, 3], [1, 2, 3, 4, 5]]
    np.testing.assert_allclose(self_bleu_scores(texts), nltk_self_bleu(texts), atol=1e-12)


@pytest.mark.parametrize("order", [1, 3, 4])
def test_dataset_bleu_matches_nltk_on_random_small_texts(order):
    rng = np.random.default_rng(10 + order)
    for _ in range(30):
        vocab = int(rng.integers(1, 6))
        train = _random_texts(rng, int(rng.integers(1, 6)), 10, vocab)
        gens = _random_texts(rng, int(rng.integers(1, 5)), 10, vocab)
        table = np.array([[nltk_sentence_bleu([t], g, order) for t in train] for g in gens])
        scores, index = dataset_bleu_scores(gens, train, order, chunk_size=2)
        np.testing.assert_allclose(scores, table.max(1), atol=1e-12)
        assert index.tolist() == table.argmax(1).tolist()


def test_dataset_bleu_of_copies_is_one_and_large_vocab_ids_work():
    rng = np.random.default_rng(3)
    train = torch.as_tensor(rng.integers(0, 200_000, size=(20, 30)))   # ids beyond any 16-bit packing
    gens = train[[4, 9]]
    scores, index = dataset_bleu_scores(gens, train)
    np.testing.assert_allclose(scores, 1.0)
    assert index.tolist() == [4, 9]
