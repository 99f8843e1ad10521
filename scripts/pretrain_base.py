"""Pretrain a small ImageGPT from scratch on Fashion-MNIST: the offline stand-in for openai/imagegpt-*.

No ImageGPT weights are reachable offline, so the project grows its own base model on a real 70k-image
dataset. Images are box-downsampled 28 -> 16 px (256 tokens, so CPU training and the demo stay fast) and
quantised to a 16-colour k-means palette (grey levels). The model is a plain HF ImageGPTConfig, so every
tool loads it. Same core loop as hyperfitting, with a pretraining learning rate.

CPU (2 cores, ~45 min):  python scripts/pretrain_base.py --minutes 45 --export assets/fashion-base
GPU (larger):            python scripts/pretrain_base.py --layers 8 --embd 256 --epochs 10 --batch-size 128
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import torch

from hyperfit_core.analysis import mean_token_loss
from hyperfit_core.formats import METRICS
from hyperfit_core.options import COUNT, POSITIVE, SEED
from hyperfit_core.rundir import RunDir
from hyperfit_core.train import TrainConfig, hyperfit, next_token_loss
from hyperfit_vision.data import load_torchvision_dataset
from hyperfit_vision.model import build_imagegpt
from hyperfit_vision.palette import kmeans_palette
from hyperfit_vision.training import image_sequences


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="data")
    p.add_argument("--side", type=COUNT, default=16)
    p.add_argument("--colors", type=COUNT, default=16)
    p.add_argument("--layers", type=COUNT, default=4)
    p.add_argument("--embd", type=COUNT, default=96)
    p.add_argument("--heads", type=COUNT, default=4)
    p.add_argument("--lr", type=POSITIVE, default=1e-3)
    p.add_argument("--batch-size", type=COUNT, default=64)
    p.add_argument("--epochs", type=COUNT, default=3)
    p.add_argument("--minutes", type=POSITIVE, default=None, help="Stop after about this long (step budget).")
    p.add_argument("--max-steps", type=COUNT, default=None, help="Stop after this many optimizer steps.")
    p.add_argument("--threads", type=COUNT, default=None, help="torch CPU threads (default: torch's choice).")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", default="runs")
    p.add_argument("--export", default=None, help="Copy the final model + palette here with a SOURCE note.")
    args = p.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    train = load_torchvision_dataset("fashion-mnist", args.data_root, "train").resized(args.side)
    test = load_torchvision_dataset("fashion-mnist", args.data_root, "test").resized(args.side)
    palette = kmeans_palette(train.images, args.colors, seed=args.seed)
    base = build_imagegpt(args.side, palette, n_layer=args.layers, n_embd=args.embd, n_head=args.heads, seed=args.seed)
    train_ids = image_sequences(train, base)
    test_ids = image_sequences(test.first(2000, "test images"), base).ids

    run = RunDir.create(args.out, "pretrain-fashion")
    run.write_config(vars(args), seed=args.seed, command=" ".join(sys.argv))
    max_steps = args.max_steps
    if args.minutes and not max_steps:  # time a few steps, then turn the wall-clock budget into a step budget
        next_token_loss(base.model, train_ids.ids[:args.batch_size]).backward()  # warm-up, not timed
        probe = time.time()
        for first in range(0, 5 * args.batch_size, args.batch_size):
            next_token_loss(base.model, train_ids.ids[first:first + args.batch_size]).backward()
        base.model.zero_grad(set_to_none=True)
        max_steps = max(1, int(args.minutes * 60 / ((time.time() - probe) / 5) * 0.75))
    config = TrainConfig(lr=args.lr, batch_size=args.batch_size, epochs=args.epochs, seed=args.seed,
                         grad_clip=1.0, max_steps=max_steps)
    started = time.time()
    hyperfit(base.model, train_ids, config, run, save_extra=lambda folder: base.processor().save_pretrained(folder))
    test_loss = mean_token_loss(base.model, test_ids, batch_size=256)
    summary = {"event": "pretrain_done", "test_loss_nats": test_loss, "test_bits_per_pixel": test_loss / math.log(2),
               "test_images": len(test_ids), "minutes": (time.time() - started) / 60,
               "params": sum(p.numel() for p in base.model.parameters()), "max_steps": max_steps}
    run.log(summary)
    print(json.dumps(summary))
    if args.export:
        export = Path(args.export)
        if export.exists():
            shutil.rmtree(export)
        shutil.copytree(run / "model", export)
        shutil.copyfile(run / METRICS, export / "pretrain_metrics.jsonl")
        (export / "SOURCE.md").write_text(
            f"# fashion-base\n\nA {args.layers}-layer, {args.embd}-wide ImageGPT ({summary['params']:,} parameters) "
            f"pretrained from scratch by this project on the Fashion-MNIST training split (60,000 images, Debian "
            f"package dataset-fashion-mnist; Zalando, MIT licence), {args.side}x{args.side} px, {args.colors}-colour "
            f"k-means palette (in preprocessor_config.json).\n\nCommand: `{' '.join(sys.argv)}`\n\n"
            f"Held-out loss on {len(test_ids)} test images: {test_loss:.4f} nats/pixel "
            f"({test_loss / math.log(2):.4f} bits). Training curve: pretrain_metrics.jsonl.\n")
        print(f"exported to {export}")


if __name__ == "__main__":
    main()
