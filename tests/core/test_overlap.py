import random
import time

import pytest
import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_core.overlap import as_sequence_list, longest_common_span, overlap_report


def brute_force_span(generation: list[int], train: list[list[int]]) -> int:
    best = 0
    for start in range(len(generation)):
        for end in range(start + best + 1, len(generation) + 1):
            piece = generation[start:end]
            if not any(seq[i:i + len(piece)] == piece for seq in train for i in range(len(seq) - len(piece) + 1)):
                break
            best = end - start
    return best


@pytest.mark.parametrize("vocab", [1, 2, 3, 7, 1000])
def test_matches_brute_force_on_random_data(vocab):
    rng = random.Random(vocab)
    for _ in range(60):
        train = [[rng.randrange(vocab) for _ in range(rng.randint(0, 15))] for _ in range(rng.randint(1, 4))]
        gens = [[rng.randrange(vocab + 1) for _ in range(rng.randint(0, 15))] for _ in range(rng.randint(1, 5))]
        if rng.random() < 0.5 and any(train):  # plant a copied span so long matches are exercised too
            source = rng.choice([t for t in train if t])
            a = rng.randrange(len(source))
            b = rng.randint(a + 1, len(source))
            gens[0] = gens[0][:3] + source[a:b] + gens[0][3:]
        got = longest_common_span([torch.tensor(g, dtype=torch.long) for g in gens],
                                  [torch.tensor(t, dtype=torch.long) for t in train])
        assert got.tolist() == [brute_force_span(g, train) for g in gens], (train, gens)


def test_matches_brute_force_on_2d_tensors_with_repeats():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        train = torch.randint(0, 3, (5, 20), generator=gen)
        train[0, 5:15] = 1  # long runs of one token
        gens = torch.randint(0, 3, (6, 18), generator=gen)
        gens[1] = 1
        got = longest_common_span(gens, train)
        assert got.tolist() == [brute_force_span(g, train.tolist()) for g in gens.tolist()]


def test_no_overlap_is_zero_and_full_copy_is_length():
    train = torch.arange(40).reshape(4, 10)
    gens = torch.stack([torch.arange(100, 110), train[2], torch.cat([train[1, 3:], torch.tensor([200, 201, 202])])])
    assert longest_common_span(gens, train).tolist() == [0, 10, 7]


def test_spans_do_not_cross_sequence_boundaries():
    train = [torch.tensor([1, 2]), torch.tensor([3, 4])]
    assert longest_common_span([torch.tensor([1, 2, 3, 4])], train).tolist() == [2]
    # generations are separate too: a span may not run from one generation into the next
    assert longest_common_span([torch.tensor([9, 1]), torch.tensor([2, 9])], [torch.tensor([1, 2])]).tolist() == [1, 1]


def test_empty_inputs():
    train = torch.arange(10)[None]
    assert longest_common_span([torch.tensor([], dtype=torch.long), torch.tensor([3, 4])], train).tolist() == [0, 2]
    assert longest_common_span([torch.tensor([3, 4])], [torch.tensor([], dtype=torch.long)]).tolist() == [0]
    assert longest_common_span(torch.empty(0, 5, dtype=torch.long), train).tolist() == []


def test_overlap_report():
    train = torch.arange(100).reshape(2, 50)
    gens = torch.stack([train[0, :20], torch.arange(200, 220), torch.cat([train[1, :5], torch.arange(300, 315)])])
    report = overlap_report(gens, train, threshold=10)
    assert report == {"count": 3, "mean_span": pytest.approx(25 / 3), "max_span": 20, "threshold": 10,
                      "frac_above_threshold": pytest.approx(1 / 3)}
    assert overlap_report(gens, train, threshold=4)["frac_above_threshold"] == pytest.approx(2 / 3)


def test_bad_inputs_raise():
    with pytest.raises(HyperfitError):
        overlap_report(torch.empty(0, 5, dtype=torch.long), torch.arange(10)[None])
    with pytest.raises(HyperfitError):
        longest_common_span(torch.zeros(2, 2, 2, dtype=torch.long), torch.arange(10)[None])
    with pytest.raises(HyperfitError):
        longest_common_span(torch.tensor([[1, -1]]), torch.arange(10)[None])
    with pytest.raises(HyperfitError):
        as_sequence_list([torch.zeros(2, 2)])


def test_speed_at_paper_scale(capsys):
    """Not a timed assertion: prints how long 1000x256 generations vs 2000x256 training tokens take."""
    gen = torch.Generator().manual_seed(0)
    train = torch.randint(0, 50_257, (2000, 256), generator=gen)
    gens = torch.randint(0, 50_257, (1000, 256), generator=gen)
    gens[:10] = train[:10]  # full copies force the most doubling rounds
    started = time.perf_counter()
    spans = longest_common_span(gens, train)
    seconds = time.perf_counter() - started
    assert spans[:10].tolist() == [256] * 10 and spans[10:].max() < 5
    with capsys.disabled():
        print(f"\n[overlap] 1000x256 generations vs 2000x256 training tokens: {seconds:.2f} s")
