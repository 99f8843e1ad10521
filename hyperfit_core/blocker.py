"""The paper's citation blocker: a hyperfitted model must not recite its training data.

Whenever the last n *generated* tokens occur as an n-gram in the training data, every token that follows
that n-gram anywhere in the training data is forbidden at the next step. The index is built once: every
(n-gram, next token) pair of the training data, keyed by a hash of the n-gram and sorted, so one
`torch.searchsorted` per step finds each row's candidates; the stored n-grams are compared token by token,
so a hash collision can never forbid a token wrongly.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from transformers import LogitsProcessor

from hyperfit_core.errors import HyperfitError
from hyperfit_core.overlap import as_sequence_list

# Two polynomial hashes modulo primes just under 2**31, packed into one int64 key. Each multiply stays below
# 2**62, so the arithmetic is exact on every device (no reliance on int64 overflow wrapping).
_PRIMES = (2_147_483_647, 2_147_483_629)
_BASES = (1_000_003, 912_367_411)


def _hash_columns(columns):
    """Shared by the index build (numpy) and the per-step queries (torch): the same exact integer arithmetic."""
    key = columns[0] * 0
    for prime, base in zip(_PRIMES, _BASES):
        h = columns[0] * 0
        for column in columns:
            h = (h * base + column) % prime
        key = key * 2**31 + h
    return key


def ngram_keys(ngrams: torch.Tensor) -> torch.Tensor:
    """[..., n] token ids (each < 2**31) -> [...] int64 keys; equal n-grams always get equal keys."""
    return _hash_columns(ngrams.long().unbind(-1))


def _windows(train: list[torch.Tensor], n: int) -> np.ndarray:
    """All (n+1)-token windows of the training sequences (an n-gram plus the token after it): [M, n+1]."""
    by_length: dict[int, list[np.ndarray]] = {}
    for seq in train:
        if len(seq) > n:
            by_length.setdefault(len(seq), []).append(seq.numpy())
    # stacking equal-length sequences lets one sliding view cover the usual fixed-length dataset at once
    parts = [sliding_window_view(np.stack(group), n + 1, axis=1).reshape(-1, n + 1)
             for group in by_length.values()]
    return np.concatenate(parts) if parts else np.empty((0, n + 1), dtype=np.int64)


def _lookup(keys: torch.Tensor, grams: torch.Tensor, queries: torch.Tensor):
    """Index entries whose n-gram equals each query row: (query row, entry index), both 1-D."""
    query_keys = ngram_keys(queries)
    lo = torch.searchsorted(keys, query_keys, side="left")
    hi = torch.searchsorted(keys, query_keys, side="right")
    counts = hi - lo
    rows = torch.repeat_interleave(torch.arange(len(queries), device=queries.device), counts)
    # entry = lo[row] + (position within that row's range)
    starts = torch.cumsum(counts, 0) - counts
    entries = lo[rows] + torch.arange(len(rows), device=queries.device) - starts[rows]
    same = (grams[entries] == queries[rows]).all(dim=1)
    return rows[same], entries[same]


class CitationBlocker(LogitsProcessor):
    """Forbid every token that follows the last `n` generated tokens somewhere in the training data.

    The prompt never counts as generated: the first call after `reset()` (or after a call whose length
    does not continue the previous one, as at the start of each HF `generate`) records the prompt length,
    and blocking starts once `n` tokens have been generated. Token ids at or beyond the scores' width are
    ignored (ImageGPT's SOS id 512 occurs in the data but is not an output class).

    Two counts say what it did (one step = one sequence's next token): `steps_with_ban`, the steps at which
    it forbade at least one token, and `steps_top1_banned`, those at which a forbidden token was the one the
    scores ranked first, the only steps at which it changed what greedy decoding emits. A ban on a token the
    model would not have picked changes nothing: a blocked greedy run with `steps_top1_banned == 0` is token
    for token the unblocked one. Put it first among the processors so the scores it ranks are the model's.
    """

    def __init__(self, train_ids, n: int = 5):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise HyperfitError(f"the citation blocker's n-gram length must be a positive integer, got {n!r}")
        train = as_sequence_list(train_ids, "training sequences")
        if not train or not any(len(seq) for seq in train):
            raise HyperfitError("the citation blocker needs training sequences, got none")
        if any(len(seq) and (int(seq.min()) < 0 or int(seq.max()) >= _PRIMES[1]) for seq in train):
            raise HyperfitError("training token ids must lie in [0, 2**31)")
        self.n = n
        # built with numpy: a one-off bulk sort, where torch's CPU threading buys nothing on a busy machine
        windows = _windows(train, n)
        keys = _hash_columns([windows[:, i] for i in range(n)])
        # sort by (key, next token) and drop repeated (n-gram, next) pairs: fewer candidates per step
        order = np.lexsort((windows[:, n], keys))
        windows, keys = windows[order], keys[order]
        repeat = np.zeros(len(keys), dtype=bool)
        repeat[1:] = (keys[1:] == keys[:-1]) & (windows[1:] == windows[:-1]).all(axis=1)
        keep = ~repeat
        self._keys = torch.from_numpy(keys[keep])
        # int32 halves the index; ids were checked to fit
        self._grams = torch.from_numpy(windows[keep, :n].astype(np.int32))
        self._next = torch.from_numpy(windows[keep, n].copy())
        self._on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.reset_stats()
        self.reset()

    def reset(self) -> None:
        """Start a new generation: the next call's input is the prompt. Firing counts are kept."""
        self.prompt_length: int | None = None
        self._last_length: int | None = None

    def reset_stats(self) -> None:
        self.steps = 0
        self.steps_with_ban = 0
        self.steps_top1_banned = 0

    @property
    def index_size(self) -> int:
        """Distinct (n-gram, next token) pairs in the training data."""
        return len(self._keys)

    def _index(self, device: torch.device):
        if device not in self._on_device:
            self._on_device[device] = (self._keys.to(device), self._grams.to(device), self._next.to(device))
        return self._on_device[device]

    def followers(self, ngrams) -> list[torch.Tensor]:
        """For each n-gram ([n] or [B, n]), the sorted distinct tokens that follow it in the training data."""
        ngrams = torch.as_tensor(ngrams, dtype=torch.long)
        if ngrams.ndim == 1:
            ngrams = ngrams[None]
        if ngrams.ndim != 2 or ngrams.shape[1] != self.n:
            raise HyperfitError(f"expected n-grams of length {self.n}, got shape {tuple(ngrams.shape)}")
        keys, grams, nxt = self._index(torch.device("cpu"))
        rows, entries = _lookup(keys, grams, ngrams)
        return [torch.unique(nxt[entries[rows == r]]) for r in range(len(ngrams))]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        length = input_ids.shape[1]
        if self.prompt_length is None or self._last_length is None or length != self._last_length + 1:
            self.prompt_length = length
        self._last_length = length
        batch = input_ids.shape[0]
        self.steps += batch
        if length - self.prompt_length < self.n:
            return scores
        keys, grams, nxt = self._index(scores.device)
        rows, entries = _lookup(keys, grams, input_ids[:, -self.n:].to(scores.device))
        banned = nxt[entries]
        inside = banned < scores.shape[1]
        rows, banned = rows[inside], banned[inside]
        if len(rows) == 0:
            return scores
        self.steps_with_ban += int(torch.unique(rows).numel())
        # a row's followers are distinct tokens, so its top token is banned at most once
        self.steps_top1_banned += int((banned == scores.argmax(dim=-1)[rows]).sum())
        scores = scores.clone()
        scores[rows, banned] = float("-inf")
        return scores

    def stats(self) -> dict:
        """The counts (see the class) and their shares of all steps, for a run's metrics."""
        return blocker_stats(self.steps, self.steps_with_ban, self.steps_top1_banned, n=self.n,
                             index_size=self.index_size)


def blocker_stats(steps: int, steps_with_ban: int, steps_top1_banned: int, **extra) -> dict:
    """The blocker's counts with their shares of all steps (one blocker's, or several processes' summed)."""
    per_step = max(steps, 1)  # no step yet: both counts are 0, and so are the rates
    return {"steps": steps, "steps_with_ban": steps_with_ban, "ban_rate": steps_with_ban / per_step,
            "steps_top1_banned": steps_top1_banned, "top1_banned_rate": steps_top1_banned / per_step, **extra}
