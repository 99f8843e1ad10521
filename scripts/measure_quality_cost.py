#!/usr/bin/env python
"""What MAUVE features and fluency cost with the default scorer (gemma-3-270m GGUF) on this machine: the load, the
features and the perplexities of COUNT texts of TOKENS scorer tokens (each after a CONTEXT-token context, spans of
a corpus), and MAUVE on those features; with the load average each step ran under (a busy machine's numbers say
so). Two checks ride along: batched features equal one-at-a-time features on the real model (right padding with
its sliding-window attention), and a looping text's perplexity against the human texts'.

    nice -n 10 python scripts/measure_quality_cost.py data/text/news.txt --max-load 2 \
        --json docs/measurements/quality_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from hyperfit_core.options import COUNT, POSITIVE


def spans(text_model, corpus: Path, count: int, context: int, tokens: int) -> tuple[list[str], list[str]]:
    """(contexts, continuations): consecutive context + continuation spans of the corpus's longest documents."""
    docs = [d for d in corpus.read_text(encoding="utf-8").split("\n\n") if d.strip()]
    ids = [i for i in text_model.encode(docs) if len(i) >= context + tokens]
    if len(ids) < count:
        raise SystemExit(f"error: {corpus} has {len(ids)} documents of {context + tokens} tokens, {count} needed")
    ids = sorted(ids, key=len, reverse=True)[:count]
    return ([text_model.decode(i[:context]) for i in ids],
            [text_model.decode(i[context:context + tokens]) for i in ids])


def wait_for_quiet(max_load: float | None, patience_s: float) -> None:
    """Hold a timed step until the 1-minute load average is below `max_load` (numbers from a busy machine time the
    other jobs); after `patience_s` run anyway, and the recorded load says so."""
    waited = time.monotonic()
    while max_load is not None and os.getloadavg()[0] >= max_load and time.monotonic() - waited < patience_s:
        time.sleep(15)


def timed(step, results: dict, name: str, max_load: float | None = None, patience_s: float = 3600):
    wait_for_quiet(max_load, patience_s)
    before = os.getloadavg()[0]
    start = time.perf_counter()
    value = step()
    results[name] = {"s": round(time.perf_counter() - start, 2),
                     "load_average_1m": {"before": round(before, 2), "after": round(os.getloadavg()[0], 2)}}
    print(name, results[name], file=sys.stderr)
    return value


def main(argv=None) -> None:
    from hyperfit_text.scorer import DEFAULT_SCORER

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--scorer", default=DEFAULT_SCORER)
    parser.add_argument("--count", type=COUNT, default=40)
    parser.add_argument("--context", type=COUNT, default=32)
    parser.add_argument("--tokens", type=COUNT, default=256)
    parser.add_argument("--max-load", type=POSITIVE, default=None,
                        help="Start each timed step only once the 1-minute load average is below this (waits up to "
                             "an hour per step).")
    parser.add_argument("--json", type=Path, default=None, help="Write the result here as well as to stdout.")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from hyperfit_core.atomic import write_json
    from hyperfit_core.rundir import library_versions
    from hyperfit_text.fluency import continuation_nll
    from hyperfit_text.mauve_score import mauve_score
    from hyperfit_text.scorer import load_scorer
    from hyperfit_text.text_features import text_features

    steps: dict = {}
    scorer = timed(lambda: load_scorer(args.scorer, device="cpu"), steps, "load")
    contexts, texts = spans(scorer, args.corpus, args.count, args.context, args.tokens)
    features = timed(lambda: text_features(scorer, texts), steps, "features", args.max_load)
    nll = timed(lambda: continuation_nll(scorer, contexts, texts), steps, "fluency", args.max_load)
    half = args.count // 2
    mauve = timed(lambda: mauve_score(features[:half], features[half:]), steps, "mauve", args.max_load)
    alone = np.stack([text_features(scorer, [text])[0] for text in texts[:3]])
    loop = " ".join(texts[0].split()[:12])  # a 12-word phrase said over and over, as a degenerate generation
    loop_nll = continuation_nll(scorer, contexts[:1], [" " + " ".join([loop] * 20)])
    per_text = np.exp(nll[:, 0] / nll[:, 1])
    result = {"command": "python " + " ".join([f"scripts/{Path(__file__).name}", *(argv or sys.argv[1:])]),
              "scorer": args.scorer, "texts": args.count, "context_tokens": args.context,
              "continuation_tokens": args.tokens, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "steps": steps, "feature_dim": int(features.shape[1]),
              "per_text_s": {"features": round(steps["features"]["s"] / args.count, 3),
                             "fluency": round(steps["fluency"]["s"] / args.count, 3)},
              "check_batched_vs_alone_max_abs_diff": float(np.abs(alone - features[:3]).max()),
              "check_mauve_first_half_vs_second_half": mauve,
              "check_perplexity_human_mean": float(per_text.mean()),
              "check_perplexity_looping_text": float(np.exp(loop_nll[0, 0] / loop_nll[0, 1])),
              "versions": library_versions()}
    if args.json:
        write_json(args.json, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
