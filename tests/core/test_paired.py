import numpy as np
import pytest
from scipy.stats import binomtest

from hyperfit_core.errors import HyperfitError
from hyperfit_core.paired import bootstrap_interval, compare, sign_test


def test_sign_test_matches_scipys_exact_binomial_test():
    diffs = [1.0] * 9 + [-0.5] + [0.0] * 3  # 9 up, 1 down, 3 ties (left out)
    positive, negative, ties, p = sign_test(diffs)
    assert (positive, negative, ties) == (9, 1, 3)
    assert p == pytest.approx(binomtest(9, 10, 0.5).pvalue, rel=1e-12)
    assert sign_test([0.0, 0.0])[3] == 1.0


def test_a_consistent_gain_excludes_zero_and_noise_does_not():
    rng = np.random.default_rng(1)
    base = [rng.normal(0.4, 0.05, 40) for _ in range(5)]
    better = [b + 0.05 + rng.normal(0, 0.01, 40) for b in base]
    result = compare(better, base, reps=2000)
    assert result.excludes_zero and result.low > 0 and result.positive == 200 and result.sign_p < 1e-10
    noise = [b + rng.normal(0, 0.05, 40) for b in base]
    null = compare(noise, base, reps=2000)
    assert null.low < 0 < null.high and not null.excludes_zero
    assert result.seeds == 5 and result.prompts == 200


def test_the_interval_widens_with_the_spread_between_seeds():
    # every seed's prompts agree closely, but seeds disagree: the two-stage bootstrap must see that
    tight = [np.full(40, 0.1) + np.linspace(-1e-3, 1e-3, 40) for _ in range(4)]
    spread = [np.full(40, v) + np.linspace(-1e-3, 1e-3, 40) for v in (-0.3, 0.0, 0.2, 0.5)]
    low_t, high_t = bootstrap_interval(tight, reps=2000)
    low_s, high_s = bootstrap_interval(spread, reps=2000)
    assert high_t - low_t < 0.01 < high_s - low_s
    assert bootstrap_interval(spread, reps=500, seed=3) == bootstrap_interval(spread, reps=500, seed=3)


def test_bad_pairs_are_refused():
    with pytest.raises(HyperfitError, match="same"):
        compare([[1.0, 2.0]], [[1.0]])
    with pytest.raises(HyperfitError, match="seeds"):
        compare([[1.0]], [[1.0], [2.0]])
    with pytest.raises(HyperfitError, match="non-finite"):
        compare([[float("nan")]], [[1.0]])
    with pytest.raises(HyperfitError, match="at least one"):
        compare([], [])
