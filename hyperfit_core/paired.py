"""Paired comparisons of two decoding conditions on the same prompts: per-prompt differences, a two-stage
bootstrap interval over seeds and prompts, and an exact sign test.

Every condition of one seed continues the same contexts, so condition A minus condition B can be taken prompt by
prompt; the prompts of different seeds differ (they follow the seed), and each seed's models differ. The interval
resamples both levels (seeds with replacement, then prompts with replacement inside each drawn seed), so it
carries the spread between seeds as well as between prompts; with one seed it is the plain prompt bootstrap.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from hyperfit_core.errors import HyperfitError


@dataclass
class PairedResult:
    mean: float  # mean per-prompt difference, A - B, over every (seed, prompt)
    low: float  # bootstrap interval of that mean
    high: float
    level: float
    positive: int  # prompts where A > B
    negative: int  # prompts where A < B
    ties: int
    sign_p: float  # exact two-sided sign test over the non-tied prompts
    seeds: int
    prompts: int  # (seed, prompt) pairs in all

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def _checked(groups) -> list[np.ndarray]:
    arrays = [np.asarray(g, dtype=np.float64).ravel() for g in groups]
    if not arrays or any(len(a) == 0 for a in arrays):
        raise HyperfitError("a paired comparison needs at least one seed with at least one prompt")
    if any(not np.isfinite(a).all() for a in arrays):
        raise HyperfitError("a paired comparison got a non-finite difference")
    return arrays


def bootstrap_interval(groups, reps: int = 10000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean difference under the two-stage (seed, then prompt) bootstrap."""
    arrays = _checked(groups)
    if not 0 < level < 1 or reps < 1:
        raise HyperfitError(f"bootstrap needs 0 < level < 1 and reps >= 1, got {level}, {reps}")
    rng = np.random.default_rng(seed)
    means = np.empty(reps)
    for r in range(reps):
        drawn = rng.integers(0, len(arrays), len(arrays))
        total = count = 0.0
        for g in drawn:
            values = arrays[g]
            picked = values[rng.integers(0, len(values), len(values))]
            total += picked.sum()
            count += len(picked)
        means[r] = total / count
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def sign_test(differences) -> tuple[int, int, int, float]:
    """(positive, negative, ties, exact two-sided p) of the sign test; ties are left out, as usual."""
    values = np.concatenate(_checked([differences]))
    positive, negative = int((values > 0).sum()), int((values < 0).sum())
    ties = len(values) - positive - negative
    n, k = positive + negative, min(positive, negative)
    if n == 0:
        return positive, negative, ties, 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return positive, negative, ties, min(1.0, 2 * tail)


def compare(a_by_seed, b_by_seed, reps: int = 10000, level: float = 0.95, seed: int = 0) -> PairedResult:
    """A minus B, where a_by_seed[s][i] and b_by_seed[s][i] are the two conditions' values on prompt i of seed s."""
    if len(a_by_seed) != len(b_by_seed):
        raise HyperfitError(f"condition A has {len(a_by_seed)} seeds, B has {len(b_by_seed)}")
    groups = []
    for s, (a, b) in enumerate(zip(a_by_seed, b_by_seed)):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            raise HyperfitError(f"seed {s}: condition A has {a.size} prompts, B has {b.size}; pairs need the same")
        groups.append(a - b)
    groups = _checked(groups)
    low, high = bootstrap_interval(groups, reps, level, seed)
    positive, negative, ties, p = sign_test(np.concatenate(groups))
    every = np.concatenate(groups)
    return PairedResult(mean=float(every.mean()), low=low, high=high, level=level, positive=positive,
                        negative=negative, ties=ties, sign_p=p, seeds=len(groups), prompts=len(every))
