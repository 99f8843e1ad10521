"""Benchmark hyperfit_core.metrics' Self-BLEU and dataset BLEU against nltk's sentence_bleu (method1).

Texts are seeded Zipf-distributed token ids (vocabulary 5000, exponent 1.1), which, like real text, share
many frequent tokens and few long n-grams.

By default nltk scores every one of the 1000 hypotheses against all 999 others, so its time is measured,
not extrapolated; that takes ~7 min on 2 idle CPU cores (0.42 s per hypothesis), ~11 min on a busy one. For a quick run,
--nltk-hypotheses 200 lets nltk score only the first 200 hypotheses, each still against all the other
texts: every hypothesis costs nltk the same, so its time scales *linearly* to all texts, the values of those
200 are compared exactly, and the JSON says `nltk_extrapolated: true`.
Dataset BLEU (1000 generations x 2000 training sequences of 256 tokens) is checked against nltk on the
first --dataset-check generations only (each against all training sequences; ~5 s per generation).

    python scripts/bench_metrics.py                      # writes bench/results/metrics_cpu.json (~8 min)
    python scripts/bench_metrics.py --nltk-hypotheses 200 --out /tmp/quick.json   # ~2 min
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from hyperfit_core.atomic import write_json
from hyperfit_core.metrics import dataset_bleu_scores, self_bleu_scores
from hyperfit_core.options import COUNT, NON_NEGATIVE, SEED


def zipf_texts(rng: np.random.Generator, count: int, length: int, vocab: int) -> np.ndarray:
    probs = 1.0 / np.arange(1, vocab + 1) ** 1.1
    return rng.choice(vocab, size=(count, length), p=probs / probs.sum())


def best_of(repeats: int, func):
    """(shortest wall time of `repeats` calls, last result): the minimum is the least noisy estimate."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return min(times), result


def nltk_bleu(refs, hyp, order: int) -> float:
    return sentence_bleu(refs, hyp, weights=(1 / order,) * order,
                         smoothing_function=SmoothingFunction().method1)


def bench_self_bleu(texts: np.ndarray, hypotheses: int, order: int, repeats: int) -> dict:
    seconds_ours, ours = best_of(repeats, lambda: self_bleu_scores(texts, order))
    as_lists = texts.tolist()
    start = time.perf_counter()
    reference = [nltk_bleu(as_lists[:i] + as_lists[i + 1:], as_lists[i], order) for i in range(hypotheses)]
    measured = time.perf_counter() - start
    seconds_nltk = measured * len(texts) / hypotheses
    return {
        "texts": len(texts), "tokens_per_text": texts.shape[1], "max_order": order,
        "nltk_hypotheses": hypotheses, "nltk_extrapolated": hypotheses < len(texts),
        "seconds_ours": seconds_ours, "seconds_ours_repeats": repeats,
        "seconds_nltk_measured": measured, "seconds_nltk": seconds_nltk,
        "ratio": seconds_nltk / seconds_ours,
        "max_abs_diff": float(np.abs(ours[:hypotheses] - np.asarray(reference)).max()),
        "self_bleu_ours": float(ours.mean()),
        "self_bleu_nltk_on_checked": float(np.mean(reference)),
    }


def bench_dataset_bleu(gens: np.ndarray, train: np.ndarray, checked: int, order: int) -> dict:
    seconds_ours, (scores, index) = best_of(1, lambda: dataset_bleu_scores(gens, train, order))
    train_lists = train.tolist()
    start = time.perf_counter()
    table = np.array([[nltk_bleu([t], g, order) for t in train_lists] for g in gens[:checked].tolist()])
    measured = time.perf_counter() - start
    return {
        "generations": len(gens), "generation_tokens": gens.shape[1],
        "train_sequences": len(train), "train_tokens": train.shape[1], "max_order": order,
        "seconds_ours": seconds_ours,
        "nltk_checked_generations": checked, "seconds_nltk_measured": measured,
        "seconds_nltk_extrapolated": measured * len(gens) / checked,
        "max_abs_diff": float(np.abs(scores[:checked] - table.max(1)).max()),
        "argmax_agrees": bool((index[:checked] == table.argmax(1)).all()),
        "dataset_bleu_ours": float(scores.mean()),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=COUNT, default=1000)
    parser.add_argument("--length", type=COUNT, default=96)
    parser.add_argument("--vocab", type=COUNT, default=5000)
    parser.add_argument("--order", type=COUNT, default=4)
    parser.add_argument("--nltk-hypotheses", type=COUNT, default=None, help="default: all texts (no scaling)")
    parser.add_argument("--repeats", type=COUNT, default=3, help="timed runs of ours; the fastest is reported")
    parser.add_argument("--train", type=COUNT, default=2000, help="training sequences for dataset BLEU")
    parser.add_argument("--train-length", type=COUNT, default=256)
    parser.add_argument("--dataset-check", type=NON_NEGATIVE, default=5,
                        help="generations nltk checks for dataset BLEU")
    parser.add_argument("--seed", type=SEED, default=0)
    parser.add_argument("--out", default="bench/results/metrics_cpu.json")
    args = parser.parse_args(argv)

    load_start = os.getloadavg()[0]
    rng = np.random.default_rng(args.seed)
    texts = zipf_texts(rng, args.texts, args.length, args.vocab)
    train = zipf_texts(rng, args.train, args.train_length, args.vocab)
    hypotheses = min(args.nltk_hypotheses or args.texts, args.texts)

    self_result = bench_self_bleu(texts, hypotheses, args.order, args.repeats)
    print(f"self-BLEU {args.texts} x {args.length}: ours {self_result['seconds_ours']:.3f} s, nltk "
          f"{self_result['seconds_nltk']:.1f} s{' (extrapolated)' if self_result['nltk_extrapolated'] else ''}, "
          f"ratio {self_result['ratio']:.0f}x, max |diff| {self_result['max_abs_diff']:.2e}", flush=True)
    dataset_result = bench_dataset_bleu(texts, train, min(args.dataset_check, args.texts), args.order)
    print(f"dataset BLEU {args.texts} x {args.train}: ours {dataset_result['seconds_ours']:.2f} s, nltk "
          f"~{dataset_result['seconds_nltk_extrapolated']:.0f} s (extrapolated from "
          f"{dataset_result['nltk_checked_generations']}), max |diff| {dataset_result['max_abs_diff']:.2e}")

    result = {
        "device": f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                  f"torch threads {torch.get_num_threads()}",
        # other jobs on a shared machine slow both sides; the ratio suffers less than the raw seconds
        "load_average_1m": {"start": load_start, "end": os.getloadavg()[0]},
        "python": platform.python_version(), "numpy": np.__version__, "seed": args.seed, "vocab": args.vocab,
        "texts": args.texts, "nltk_texts": hypotheses,
        **{key: self_result[key] for key in ("seconds_ours", "seconds_nltk", "ratio", "max_abs_diff")},
        "self_bleu": self_result,
        "dataset_bleu": dataset_result,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    print(f"wrote {args.out}")
    ok = self_result["max_abs_diff"] <= 1e-6 and dataset_result["max_abs_diff"] <= 1e-6
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
