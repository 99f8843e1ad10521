"""Measure how often a citation blocker of n pixels would fire on NOVEL real images, to choose n for images.

A blocker should stop recitation of the hyperfitting images, not ordinary image statistics. If held-out
real images already repeat n-grams of the training images, a blocker of that n would fire on honest
completions too (a flat sky or black background repeats 5-grams everywhere). For each n we take 2000
random training images and held-out test images, tokenise both with a palette fitted on the training
images, and count the share of n-grams in the held-out images' lower 75% (the region a completion writes)
that occur anywhere in the training tokens: the blocker's false-firing rate.

    python scripts/measure_blocker_n.py --data fashion-mnist --side 16 --colors 16
    python scripts/measure_blocker_n.py --data assets/cifar10-test-first20 --num-train 16  # tiny, indicative only
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


from hyperfit_core.atomic import write_json
from hyperfit_core.options import COUNT, SEED
from hyperfit_vision.data import ImageSource
from hyperfit_vision.palette import kmeans_palette
from hyperfit_vision.tokens import images_to_tokens

NS = (5, 8, 12, 16, 24, 32, 48, 64, 96, 128)


def ngram_set(tokens: np.ndarray, n: int) -> np.ndarray:
    windows = np.lib.stride_tricks.sliding_window_view(tokens, n, axis=1).reshape(-1, n)
    return np.unique(windows, axis=0).view(np.dtype((np.void, windows.dtype.itemsize * n))).ravel()


def firing_rate(train: np.ndarray, held_out: np.ndarray, n: int, start: int) -> float:
    """Share of held-out n-grams ending in the generated region (position >= start) seen in training."""
    if n > train.shape[1]:
        return float("nan")
    known = ngram_set(train, n)
    windows = np.lib.stride_tricks.sliding_window_view(held_out, n, axis=1)  # (N, L-n+1, n)
    ends = np.arange(n - 1, held_out.shape[1])
    windows = np.ascontiguousarray(windows[:, ends >= start]).reshape(-1, n)
    keys = windows.view(np.dtype((np.void, windows.dtype.itemsize * n))).ravel()
    return float(np.isin(keys, known).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--data-root", default="data")
    p.add_argument("--side", type=COUNT, default=None)
    p.add_argument("--colors", type=COUNT, default=16)
    p.add_argument("--num-train", type=COUNT, default=2000)
    p.add_argument("--num-held-out", type=COUNT, default=1000)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", default=None, help="JSON file for the table.")
    args = p.parse_args()

    if Path(args.data).is_dir():
        images = ImageSource(args.data).load().resized(args.side)
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))
        train, held = images.subset(order[:args.num_train]), images.subset(order[args.num_train:])
    else:
        pool = ImageSource(args.data, args.data_root, "train").load().resized(args.side)
        train = pool.subset(torch.randperm(len(pool), generator=torch.Generator().manual_seed(args.seed))[:args.num_train])
        held = ImageSource(args.data, args.data_root, "test").load().resized(args.side)
        held = held.subset(torch.arange(min(args.num_held_out, len(held))))
    palette = kmeans_palette(train.images, args.colors, seed=args.seed)
    train_tokens = images_to_tokens(train.images, palette).numpy().astype(np.int16)
    held_tokens = images_to_tokens(held.images, palette).numpy().astype(np.int16)
    side = train.side
    start = round(0.25 * side) * side
    rows = [{"n": n, "n_in_rows": n / side, "false_firing_rate": firing_rate(train_tokens, held_tokens, n, start)}
            for n in NS if n < side * side - start]
    result = {"data": args.data, "side": side, "colors": args.colors, "train_images": len(train),
              "held_out_images": len(held), "rows": rows}
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
