"""The statistics of a rating study: Wilson intervals, Bradley-Terry strengths, Fleiss' kappa, Krippendorff's alpha."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (nan, nan) when n = 0."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact at the edges (no 1e-17 rounding)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


def bradley_terry(wins: np.ndarray, prior: float = 0.0, iterations: int = 10_000, tol: float = 1e-12) -> np.ndarray:
    """Log-strengths of the Bradley-Terry model, P(i beats j) = s_i / (s_i + s_j), by Hunter's MM algorithm.

    wins[i, j]: how often i beat j (a tie counts half to each). `prior` adds that many virtual ties to every
    pair of players that met, which keeps a player who never won finite. Returned centred to mean 0 over the
    players that played; nan for players without comparisons, -inf for one who never won without a prior.
    """
    wins = np.asarray(wins, dtype=float)
    games = wins + wins.T
    met = games > 0
    if prior:
        wins = wins + prior / 2 * met
        games = wins + wins.T
    played = games.sum(axis=1) > 0
    total_wins = wins.sum(axis=1)
    strength = np.where(played, 1.0, np.nan)
    idx = np.flatnonzero(played)
    if len(idx) == 0:
        return strength
    s = np.ones(len(idx))
    n, W = games[np.ix_(idx, idx)], total_wins[idx]
    for _ in range(iterations):
        sums = s[:, None] + s[None, :]
        denominators = np.divide(n, sums, out=np.zeros_like(n), where=n > 0).sum(axis=1)
        new = W / denominators
        new /= np.exp(np.mean(np.log(np.where(new > 0, new, 1.0))))  # fix the scale (zero-win players aside)
        if np.max(np.abs(new - s)) < tol:
            s = new
            break
        s = new
    with np.errstate(divide="ignore"):
        logs = np.log(s)
    finite = np.isfinite(logs)
    logs[finite] -= logs[finite].mean()
    strength[idx] = logs
    return strength


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of an (items x categories) table of rating counts, the same number of raters per item."""
    counts = np.asarray(counts, dtype=float)
    raters = counts.sum(axis=1)
    if len(counts) == 0 or np.any(raters != raters[0]) or raters[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings for every item")
    m = raters[0]
    p_items = ((counts * (counts - 1)).sum(axis=1)) / (m * (m - 1))
    p_categories = counts.sum(axis=0) / counts.sum()
    p_bar, p_e = p_items.mean(), (p_categories ** 2).sum()
    return float("nan") if p_e == 1 else float((p_bar - p_e) / (1 - p_e))


def krippendorff_alpha_nominal(units: list[list]) -> float:
    """Krippendorff's alpha for nominal values; `units` holds each unit's values (missing ones left out).

    Units with fewer than two values are not pairable and are ignored. nan when there is no variation at all.
    """
    coincidence: Counter = Counter()
    for values in units:
        m = len(values)
        if m < 2:
            continue
        counts = Counter(values)
        for c, nc in counts.items():
            for k, nk in counts.items():
                coincidence[c, k] += nc * (nk - (c == k)) / (m - 1)
    n_c: Counter = Counter()
    for (c, _), value in coincidence.items():
        n_c[c] += value
    n = sum(n_c.values())
    if n <= 1:
        return float("nan")
    observed = sum(v for (c, k), v in coincidence.items() if c != k)
    expected = (n * n - sum(v * v for v in n_c.values())) / (n - 1)
    return float("nan") if expected == 0 else 1 - observed / expected
