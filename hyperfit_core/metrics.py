"""Diversity and copying metrics on token ids, for any modality (text tokens, image codebook ids, ...).

Inputs are a 2-D (count, length) tensor/array, or any iterable of 1-D int sequences (lists, LongTensors,
numpy arrays), lengths may differ. Undefined values (a type-token ratio of an empty sequence, ...) raise
HyperfitError rather than being skipped silently; filter such sequences out first if they are expected.

BLEU here is exactly nltk's `sentence_bleu(refs, hyp, weights=(1/N,)*N,
smoothing_function=SmoothingFunction().method1)` (the Self-BLEU of Zhu et al. 2018 uses it), vectorised
with numpy so 1000 texts take well under a second instead of minutes. For a hypothesis h and references R:
  p_n    = sum over n-grams g of h of min(count_h(g), max_{r in R} count_r(g)) / max(1, #n-grams of h),
           and when that numerator is 0 (method1) p_n = 0.1 / max(1, #n-grams of h) instead;
  r      = the reference length closest to len(h), the shorter one on a tie;
  BP     = 1 if len(h) > r, else exp(1 - r / len(h));
  BLEU   = 0 if no unigram of h matches (or h is empty), else BP * exp(mean_n log p_n).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from hyperfit_core.errors import HyperfitError

_EPSILON = 0.1  # nltk SmoothingFunction().method1's default


def _as_arrays(seqs, what: str = "sequences") -> list[np.ndarray]:
    """A 2-D array-like or an iterable of 1-D ones -> list of 1-D int64 numpy arrays."""
    if hasattr(seqs, "ndim") and hasattr(seqs, "shape"):  # torch tensor or numpy array
        data = np.asarray(seqs.detach().cpu() if hasattr(seqs, "detach") else seqs)
        if data.ndim != 2:
            raise HyperfitError(f"{what} must be 2-D (count, length) or a list of 1-D sequences, "
                                f"got shape {data.shape}")
        rows = list(data)
    else:
        rows = [np.asarray(row.detach().cpu() if hasattr(row, "detach") else row) for row in seqs]
    out = []
    for row in rows:
        if row.ndim != 1:
            raise HyperfitError(f"each of the {what} must be 1-D, got shape {row.shape}")
        if row.size and not np.issubdtype(row.dtype, np.integer):
            raise HyperfitError(f"{what} must hold integer token ids, got dtype {row.dtype}")
        out.append(row.astype(np.int64, copy=False))
    return out


def as_sequences(seqs) -> list[np.ndarray]:
    """The sequences as a list of 1-D int64 arrays (validated as every metric here validates them)."""
    return _as_arrays(seqs)


def _as_array(seq, what: str = "sequence") -> np.ndarray:
    return _as_arrays([seq], what)[0]


# --- per-sequence repetition -----------------------------------------------------------------------------

def type_token_ratio(seq, last: int | None = None) -> float:
    """Number of distinct tokens / number of tokens, over the last `last` tokens if given (all of them when
    the sequence is shorter). The paper reports it over the last 96 generated tokens."""
    tokens = _as_array(seq)
    if last is not None:
        if last < 1:
            raise HyperfitError("`last` must be at least 1")
        tokens = tokens[-last:]
    if tokens.size == 0:
        raise HyperfitError("type-token ratio of an empty sequence is undefined")
    return len(np.unique(tokens)) / tokens.size


def type_token_ratios(seqs, last: int | None = None) -> list[float]:
    """`type_token_ratio(seq, last)` of each sequence, in order."""
    return [type_token_ratio(s, last) for s in _nonempty(seqs)]


def mean_type_token_ratio(seqs, last: int | None = None) -> float:
    """Unweighted mean of `type_token_ratio(seq, last)` over the sequences."""
    return _mean(type_token_ratios(seqs, last))


def _ngram_rows(tokens: np.ndarray, n: int) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(tokens, n)


def seq_rep_n(seq, n: int = 4) -> float:
    """seq-rep-n of Welleck et al. (2020): 1 - distinct n-grams / total n-grams of the sequence (0 = no
    n-gram repeats). Needs at least n tokens."""
    _check_order(n)
    tokens = _as_array(seq)
    if tokens.size < n:
        raise HyperfitError(f"seq-rep-{n} needs at least {n} tokens, got {tokens.size}")
    grams = _ngram_rows(tokens, n)
    return 1.0 - len(np.unique(grams, axis=0)) / len(grams)


def seq_rep_ns(seqs, n: int = 4) -> list[float]:
    """`seq_rep_n(seq, n)` of each sequence, in order."""
    return [seq_rep_n(s, n) for s in _nonempty(seqs)]


def mean_seq_rep_n(seqs, n: int = 4) -> float:
    """Unweighted mean of `seq_rep_n(seq, n)` over the sequences."""
    return _mean(seq_rep_ns(seqs, n))


def distinct_n(seqs, n: int = 2) -> float:
    """distinct-n of Li et al. (2016), corpus level: distinct n-grams over all sequences / total n-grams."""
    _check_order(n)
    grams = [_ngram_rows(s, n) for s in _as_arrays(seqs) if s.size >= n]
    if not grams:
        raise HyperfitError(f"distinct-{n} needs at least one sequence with {n} tokens")
    grams = np.concatenate(grams)
    return len(np.unique(grams, axis=0)) / len(grams)


def _nonempty(seqs) -> list[np.ndarray]:
    arrays = _as_arrays(seqs)
    if not arrays:
        raise HyperfitError("no sequences given")
    return arrays


def _mean(values: list[float]) -> float:
    return float(np.mean(values))


def _check_order(n: int) -> None:
    if int(n) != n or n < 1:
        raise HyperfitError(f"n-gram order must be a positive integer, got {n!r}")


# --- BLEU ------------------------------------------------------------------------------------------------

def _ngram_counts(seqs: list[np.ndarray], max_order: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per order n: (owner, gram, count) for every distinct n-gram of every sequence.

    Gram ids are exact (no hashing): the id of an (n+1)-gram is the rank of the pair (id of its first
    n-gram, its last token), so keys stay below total_tokens**2 whatever the vocabulary size.
    """
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    flat = np.concatenate(seqs) if lengths.sum() else np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(seqs)), lengths)
    offset_in_seq = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    remaining = lengths[owner] - offset_in_seq  # tokens from this position to the end of its sequence
    _, token_ids = np.unique(flat, return_inverse=True)
    base = len(token_ids) + 1
    starts, gram_ids = np.arange(len(flat)), token_ids
    out = []
    for n in range(1, max_order + 1):
        if n > 1:
            keep = remaining[starts] >= n
            starts = starts[keep]
            _, gram_ids = np.unique(gram_ids[keep] * base + token_ids[starts + n - 1], return_inverse=True)
        keys, counts = np.unique(gram_ids * len(seqs) + owner[starts], return_counts=True)
        out.append((keys % len(seqs), keys // len(seqs), counts))
    return out


def _bleu_from_counts(matches: np.ndarray, hyp_lengths: np.ndarray, ref_lengths: np.ndarray) -> np.ndarray:
    """nltk method1 sentence BLEU from clipped-match counts matches[n-1, ...] (any trailing shape that
    broadcasts with hyp_lengths/ref_lengths, ref_lengths being the closest reference length)."""
    max_order = matches.shape[0]
    matches, hyp = matches.astype(np.float64), hyp_lengths.astype(np.float64)  # float32 would round epsilon
    log_p = np.zeros(np.broadcast_shapes(matches.shape[1:], hyp.shape, ref_lengths.shape))
    for n in range(1, max_order + 1):
        total = np.maximum(1.0, hyp - n + 1)
        numerator = np.where(matches[n - 1] > 0, matches[n - 1], _EPSILON)
        log_p = log_p + np.log(numerator / total) / max_order
    with np.errstate(divide="ignore", invalid="ignore"):
        brevity = np.where(hyp > ref_lengths, 1.0, np.exp(1.0 - ref_lengths / hyp))
    return np.where((matches[0] > 0) & (hyp > 0), brevity * np.exp(log_p), 0.0)


def _closest_other_length(lengths: np.ndarray) -> np.ndarray:
    """For each i, the length closest to lengths[i] among all OTHER sequences (shorter on a tie)."""
    ordered = np.sort(lengths)
    lo = np.searchsorted(ordered, lengths, "left")
    hi = np.searchsorted(ordered, lengths, "right")
    below = np.where(lo > 0, ordered[np.maximum(lo - 1, 0)], np.iinfo(np.int64).min // 4)
    above = np.where(hi < len(ordered), ordered[np.minimum(hi, len(ordered) - 1)], np.iinfo(np.int64).max // 4)
    nearest = np.where(lengths - below <= above - lengths, below, above)
    return np.where(hi - lo >= 2, lengths, nearest)  # another sequence has exactly this length


def _check_bleu_args(max_order: int, smoothing: str) -> None:
    _check_order(max_order)
    if smoothing != "method1":
        raise HyperfitError(f"only nltk's smoothing 'method1' is implemented, got {smoothing!r}")


def self_bleu_scores(seqs, max_order: int = 4, smoothing: str = "method1") -> np.ndarray:
    """Per text i: BLEU of text i against all other texts as its references (see the module docstring)."""
    _check_bleu_args(max_order, smoothing)
    seqs = _as_arrays(seqs, "texts")
    if len(seqs) < 2:
        raise HyperfitError("Self-BLEU needs at least two texts")
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    matches = np.zeros((max_order, len(seqs)))
    for n, (owner, gram, count) in enumerate(_ngram_counts(seqs, max_order)):
        if len(gram) == 0:  # every text is shorter than n
            continue
        # Sort each gram's holders by count, highest first: the best *other* reference count is the
        # group's maximum, except for the text holding it, which gets the runner-up (0 if none).
        order = np.lexsort((-count, gram))
        owner, gram, count = owner[order], gram[order], count[order]
        first = np.r_[True, gram[1:] != gram[:-1]]
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(gram)), 0))
        has_second = np.r_[~first[1:], False] & first
        second = np.where(has_second, np.r_[count[1:], 0], 0)[group_start]
        best_other = np.where(first, second, count[group_start])
        matches[n] = np.bincount(owner, np.minimum(count, best_other), minlength=len(seqs))
    return _bleu_from_counts(matches, lengths, _closest_other_length(lengths).astype(np.float64))


def self_bleu(seqs, max_order: int = 4, smoothing: str = "method1") -> float:
    """Self-BLEU (Zhu et al. 2018): mean over texts of BLEU(text, references = all other texts); higher
    means the texts resemble each other more (less diverse)."""
    return float(self_bleu_scores(seqs, max_order, smoothing).mean())


def _levels(owner, gram, count, max_count):
    """Expand each (owner, gram, count) into `count` entries (owner, key of (gram, k)) for k = 0..count-1.

    A 0/1 matrix with a 1 at every (owner, key) turns BLEU's clipped matches into a sparse matrix product:
    the dot product of two rows is sum_g sum_k [count_a(g) > k][count_b(g) > k] = sum_g min(count_a, count_b).
    """
    level = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    return np.repeat(owner, count), np.repeat(gram, count) * (max_count + 1) + level


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting: numpy 2's default hash-based unique is ~10x slower on these int64 keys."""
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def _level_matrix(rows, keys, columns, num_rows) -> sparse.csr_matrix:
    """0/1 matrix over the given sorted column keys; keys the other side never reaches cannot match."""
    cols = np.minimum(np.searchsorted(columns, keys), max(0, len(columns) - 1))
    keep = columns[cols] == keys if len(columns) else np.zeros(len(keys), bool)
    return sparse.csr_matrix((np.ones(keep.sum(), np.float32), (rows[keep], cols[keep])),
                             shape=(num_rows, max(1, len(columns))))


def dataset_bleu_scores(generations, train_seqs, max_order: int = 4,
                        chunk_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per generation: (highest BLEU against any single training sequence as the only reference, index of
    that training sequence, the first one on a tie). BLEU as in the module docstring with R = {train seq},
    so r = len(train seq)."""
    _check_order(max_order)
    if chunk_size < 1:
        raise HyperfitError("chunk_size must be at least 1")
    gens = _as_arrays(generations, "generations")
    train = _as_arrays(train_seqs, "training sequences")
    if not gens or not train:
        raise HyperfitError("dataset BLEU needs at least one generation and one training sequence")
    num_gens = len(gens)
    gen_lengths = np.array([len(s) for s in gens], dtype=np.int64)
    train_lengths = np.array([len(s) for s in train], dtype=np.float64)
    level_mats = []
    for owner, gram, count in _ngram_counts(gens + train, max_order):
        max_count = int(count.max()) if len(count) else 0
        is_gen = owner < num_gens
        gen_rows, gen_keys = _levels(owner[is_gen], gram[is_gen], count[is_gen], max_count)
        train_rows, train_keys = _levels(owner[~is_gen] - num_gens, gram[~is_gen], count[~is_gen], max_count)
        columns = np.intersect1d(_sorted_unique(gen_keys), _sorted_unique(train_keys), assume_unique=True)
        level_mats.append((_level_matrix(gen_rows, gen_keys, columns, num_gens),
                           _level_matrix(train_rows, train_keys, columns, len(train)).T.tocsr()))
    best = np.zeros(num_gens)
    best_index = np.zeros(num_gens, dtype=np.int64)
    for first in range(0, num_gens, chunk_size):
        rows = slice(first, min(first + chunk_size, num_gens))
        matches = np.stack([(gen_mat[rows] @ train_mat_t).toarray() for gen_mat, train_mat_t in level_mats])
        scores = _bleu_from_counts(matches, gen_lengths[rows, None], train_lengths[None, :])
        best_index[rows] = scores.argmax(axis=1)
        best[rows] = scores.max(axis=1)
    return best, best_index


def dataset_bleu(generations, train_seqs, max_order: int = 4) -> float:
    """Mean over generations of the highest sentence BLEU (nltk method1) the generation reaches against any
    single training sequence: how close each generation comes to copying one training example."""
    return float(dataset_bleu_scores(generations, train_seqs, max_order)[0].mean())


__all__ = ["as_sequences", "type_token_ratio", "type_token_ratios", "mean_type_token_ratio", "seq_rep_n",
           "seq_rep_ns", "mean_seq_rep_n", "distinct_n",
           "self_bleu", "self_bleu_scores", "dataset_bleu", "dataset_bleu_scores"]
