"""Entropy-matched temperature (the follow-up's first control, Li et al. 2026): the temperature T at which the
base model's mean predictive entropy on held-out positions equals the hyperfitted model's at T = 1.

If hyperfitting were only a sharper softmax, the base model sampled at that T would behave like the hyperfitted
one. The mean entropy of softmax(z / T) grows monotonically with T, so T is found by bisection (on log T) inside
a bracket grown from T = 1 by halving / doubling. The positions are exactly those `analyze` scores
(hyperfit_core.analysis.prediction_stats: every token after `context_len`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from hyperfit_core.errors import HyperfitError

T_MIN, T_MAX = 1e-3, 1e3  # beyond these the bracket search gives up: the target is out of the base's reach
ENTROPY_TOLERANCE = 1e-3  # nats: the found T's mean entropy is this close to the target
MAX_ITERATIONS = 200
CACHE_BYTES = 2 << 30  # keep the held-out logits (fp32) when they fit; otherwise each evaluation re-runs the model


def tempered_entropy(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Entropy (nats) of softmax(logits / T) along the last axis, computed in float32."""
    log_probs = torch.log_softmax(logits.float() / temperature, dim=-1)
    return torch.special.entr(log_probs.exp()).sum(-1)


class HeldOutEntropy:
    """Mean predictive entropy of `model` at any temperature over the held-out positions t >= context_len of `ids`
    (logits at t - 1 predict token t, as in prediction_stats)."""

    def __init__(self, model, ids, context_len: int, batch_size: int = 16, cache_bytes: int = CACHE_BYTES):
        self.ids = torch.as_tensor(ids).long()
        if self.ids.ndim != 2 or not 1 <= context_len < self.ids.shape[1]:
            raise HyperfitError(f"need (count, length) ids longer than context_len={context_len}, "
                                f"got shape {tuple(self.ids.shape)}")
        self.model, self.context_len = model, context_len
        self.batch_size = batch_size
        self.positions = self.ids.shape[0] * (self.ids.shape[1] - context_len)
        self.evaluations = 0
        self._cache = None
        classes = getattr(getattr(model, "config", None), "vocab_size", None)
        if classes is not None and self.positions * classes * 4 <= cache_bytes:
            self._cache = list(self._logits())

    @torch.no_grad()
    def _logits(self):
        modes = [(module, module.training) for module in self.model.modules()]
        self.model.eval()
        device = next(self.model.parameters()).device
        try:
            for first in range(0, len(self.ids), self.batch_size):
                batch = self.ids[first:first + self.batch_size, :-1].to(device)
                yield self.model(input_ids=batch).logits[:, self.context_len - 1:].float().cpu()
        finally:
            for module, training in modes:
                module.training = training

    def __call__(self, temperature: float) -> float:
        self.evaluations += 1
        total = 0.0
        for logits in (self._cache if self._cache is not None else self._logits()):
            total += float(tempered_entropy(logits, temperature).double().sum())
        return total / self.positions


@dataclass
class EntropyMatch:
    temperature: float  # the base model's T whose mean entropy matches the target
    entropy_at_temperature: float  # the base's mean entropy at that T
    target_entropy: float  # the hyperfitted model's mean entropy at T = 1
    base_entropy_at_1: float
    bracket: tuple[float, float]  # the bracket the bisection started from: entropy(lo) <= target <= entropy(hi)
    tolerance: float  # nats
    iterations: int  # bisection steps (after the bracket search)
    evaluations: int  # entropy evaluations in all

    def to_dict(self) -> dict:
        record = asdict(self)
        record["bracket"] = list(self.bracket)
        return record


def match_temperature(entropy_at, target: float, tolerance: float = ENTROPY_TOLERANCE) -> EntropyMatch:
    """Bisection on log T for entropy_at(T) == target, entropy_at monotone non-decreasing in T."""
    if not math.isfinite(target) or target < 0:
        raise HyperfitError(f"target entropy must be a finite number of nats >= 0, got {target!r}")
    at_one = entropy_at(1.0)
    evaluations = 1
    lo = hi = 1.0
    low_value = high_value = at_one
    while low_value > target:  # the target is sharper: lower T
        if lo / 2 < T_MIN:
            raise HyperfitError(f"the target entropy {target:.4g} nats is below the base model's at T={lo:g} "
                                f"({low_value:.4g} nats): no temperature in [{T_MIN:g}, {T_MAX:g}] matches it")
        hi, high_value = lo, low_value
        lo /= 2
        low_value = entropy_at(lo)
        evaluations += 1
    while high_value < target:  # the target is flatter: higher T
        if hi * 2 > T_MAX:
            raise HyperfitError(f"the target entropy {target:.4g} nats is above the base model's at T={hi:g} "
                                f"({high_value:.4g} nats): no temperature in [{T_MIN:g}, {T_MAX:g}] matches it")
        lo, low_value = hi, high_value
        hi *= 2
        high_value = entropy_at(hi)
        evaluations += 1
    bracket = (lo, hi)
    best, best_value = (lo, low_value) if abs(low_value - target) <= abs(high_value - target) else (hi, high_value)
    iterations = 0
    while abs(best_value - target) > tolerance and iterations < MAX_ITERATIONS and hi / lo - 1 > 1e-9:
        mid = math.sqrt(lo * hi)
        value = entropy_at(mid)
        iterations += 1
        evaluations += 1
        if value < target:
            lo = mid
        else:
            hi = mid
        if abs(value - target) < abs(best_value - target):
            best, best_value = mid, value
    if abs(best_value - target) > tolerance:
        raise HyperfitError(f"no temperature reaches the target entropy {target:.4g} nats within {tolerance:g} "
                            f"(closest: T={best:.6g}, {best_value:.4g} nats): the base's entropy jumps there")
    return EntropyMatch(temperature=best, entropy_at_temperature=best_value, target_entropy=target,
                        base_entropy_at_1=at_one, bracket=bracket, tolerance=tolerance, iterations=iterations,
                        evaluations=evaluations)


def entropy_matched_temperature(base_model, ids, context_len: int, target: float, batch_size: int = 16,
                                tolerance: float = ENTROPY_TOLERANCE) -> tuple[EntropyMatch, int]:
    """The base model's T matching `target` (nats) on held-out ids; returns (match, positions)."""
    entropy = HeldOutEntropy(base_model, ids, context_len, batch_size=batch_size)
    match = match_temperature(entropy, target, tolerance)
    return match, entropy.positions


__all__ = ["tempered_entropy", "HeldOutEntropy", "EntropyMatch", "match_temperature", "entropy_matched_temperature"]
