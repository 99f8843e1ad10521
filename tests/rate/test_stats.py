"""The statistics against values computed by hand or published with the textbook examples."""

import math

import numpy as np
import pytest

from hyperfit_rate.stats import bradley_terry, fleiss_kappa, krippendorff_alpha_nominal, wilson_interval


def test_wilson_interval_by_hand():
    # p = 0.5, n = 100: centre 0.5, half-width z*sqrt(0.0025 + z^2/40000) / (1 + z^2/100) = 0.0961685
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.5 - 0.0961685, abs=1e-6) and high == pytest.approx(0.5 + 0.0961685, abs=1e-6)
    # no successes in 10: [0, (z^2/10) / (1 + z^2/10)] = [0, 0.2775328]
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775328), abs=1e-6)
    assert wilson_interval(10, 10) == pytest.approx((1 - 0.2775328, 1.0), abs=1e-6)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_bradley_terry_two_players():
    # A beat B 3 times, lost once: the MLE has s_A / s_B = 3
    strengths = bradley_terry(np.array([[0, 3], [1, 0]]))
    assert strengths[0] - strengths[1] == pytest.approx(math.log(3), abs=1e-9)
    assert strengths.sum() == pytest.approx(0, abs=1e-12)


def test_bradley_terry_chain_and_ties_as_half_wins():
    # A-B 2:1 and B-C 2:1, A and C never met: the likelihood factorises, s_A : s_B : s_C = 4 : 2 : 1
    wins = np.array([[0, 2, 0], [1, 0, 2], [0, 1, 0]], dtype=float)
    assert bradley_terry(wins) == pytest.approx([math.log(2), 0, -math.log(2)], abs=1e-8)
    # one win and two ties = 2 : 1 in half wins, the same ratio 2
    ties = np.array([[0, 1 + 2 * 0.5], [2 * 0.5, 0]])
    strengths = bradley_terry(ties)
    assert strengths[0] - strengths[1] == pytest.approx(math.log(2), abs=1e-9)


def test_bradley_terry_balanced_cycle_and_degenerate_players():
    cycle = np.array([[0, 2, 1], [1, 0, 2], [2, 1, 0]], dtype=float)
    assert bradley_terry(cycle) == pytest.approx([0, 0, 0], abs=1e-9)
    # B never won: -inf without a prior, finite with one virtual tie; D never played: nan
    wins = np.array([[0, 3, 0], [0, 0, 0], [0, 0, 0]], dtype=float)
    plain = bradley_terry(wins)
    assert plain[1] == -np.inf and np.isnan(plain[2])
    smoothed = bradley_terry(wins, prior=1.0)  # 3.5 : 0.5 -> ratio 7
    assert smoothed[0] - smoothed[1] == pytest.approx(math.log(7), abs=1e-8)


def test_fleiss_kappa_textbook_example():
    # Fleiss (1971) as tabulated on Wikipedia: 10 subjects, 14 raters, 5 categories, kappa = 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(table) == pytest.approx(0.20993, abs=1e-5)
    assert fleiss_kappa([[2, 0], [0, 2]]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        fleiss_kappa([[2, 0], [1, 2]])


def test_krippendorff_alpha_nominal_textbook_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers, 12 units, missing
    # values, nominal alpha = 0.743
    a = [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None]
    b = [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3]
    c = [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None]
    d = [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]
    units = [[v for v in unit if v is not None] for unit in zip(a, b, c, d)]
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha_nominal([["a", "a"], ["b", "b"]]) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha_nominal([["a", "a"], ["a", "a"]]))  # no variation: undefined
