"""Does greedy repetition keep falling as the hyperfitting loss approaches zero? (docs/results.md)

The 474k-parameter base cannot push its loss on 2000 images near zero, so this follows one hyperfitting run on
a subset small enough to memorise (default 64 images, lr 1e-3) and, at chosen epochs, measures what the paper
links to near-zero loss: the training loss (exact, in eval mode), held-out entropy / top-1 probability /
perplexity, and greedy completions of held-out 25% prefixes scored with every repetition metric and the
overlap with the hyperfitting images. Epoch 0 is the base model.

    python scripts/measure_loss_trajectory.py --num-train 64 --lr 1e-3 --epochs 60 --out runs/trajectory
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from hyperfit_core.analysis import mean_token_loss, prediction_stats, summarize
from hyperfit_core.atomic import atomic_path, write_json
from hyperfit_core.options import COUNT, POSITIVE, SEED
from hyperfit_core.recipe import TrainSpec
from hyperfit_core.sequences import TokenSequences
from hyperfit_core.train import TrainConfig
from hyperfit_vision.data import ImageSource, load_torchvision_dataset
from hyperfit_vision.fast_decode import fast_complete_images
from hyperfit_vision.grid import completion_grid, masked_prefix
from hyperfit_vision.model import load_imagegpt
from hyperfit_vision.scoring import score_images
from hyperfit_vision.tokens import tokens_to_images
from hyperfit_vision.training import VisionModality, image_sequences, train_images

BASE = Path(__file__).resolve().parents[1] / "assets" / "fashion-base"
PLOTTED = ["seq_rep_4", "row_repetition", "patch_duplication", "type_token_ratio"]


def measure(model, epoch: int, train: TokenSequences, test_ids: torch.Tensor, side: int, prefix_rows: int,
            palette: torch.Tensor, context: int) -> tuple[dict, torch.Tensor]:
    stats = summarize(prediction_stats(model, test_ids, context))
    tokens = fast_complete_images(model, test_ids, prefix_rows, side, batch_size=100, progress=False)
    sides = score_images({"tokens": tokens, "real_tokens": test_ids[:, 1:], "palette": palette,
                          "prefix_rows": prefix_rows}, train.ids[:, 1:])
    # the exact loss over every pixel, in eval mode (the per-epoch training mean lags behind the weights);
    # prediction_stats and fast_complete_images hand the model back in the mode it came in
    train_loss = mean_token_loss(model, train.ids)
    row = {"epoch": epoch, "train_loss": train_loss,
           **{k: stats[k] for k in ("entropy_mean", "top1_prob_mean", "top1_accuracy", "perplexity")},
           **sides["generated"].values, "real": sides["real"].values}
    return row, tokens


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(epochs, [r["train_loss"] for r in rows], "o-", label="training loss (eval mode)")
    axes[0].plot(epochs, [r["entropy_mean"] for r in rows], "s-", label="held-out entropy")
    axes[0].plot(epochs, [math.log(r["perplexity"]) for r in rows], "^-", label="held-out loss")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("nats / pixel")
    axes[0].legend()
    for key in PLOTTED:
        line, = axes[1].plot(epochs, [r[key] for r in rows], "o-", label=key)
        axes[1].axhline(rows[0]["real"][key], color=line.get_color(), linestyle=":", linewidth=1)
    axes[1].set_xlabel("epoch")
    axes[1].set_title("greedy repetition (dotted: real images)")
    axes[1].legend(fontsize=8)
    axes[2].plot([r["train_loss"] for r in rows], [r["seq_rep_4"] for r in rows], "o-")
    for r in rows:
        axes[2].annotate(str(r["epoch"]), (r["train_loss"], r["seq_rep_4"]), fontsize=8)
    axes[2].set_xlabel("training loss (nats/pixel)")
    axes[2].set_ylabel("greedy seq-rep-4")
    axes[2].invert_xaxis()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="data")
    p.add_argument("--num-train", type=COUNT, default=64)
    p.add_argument("--num-test", type=COUNT, default=300)
    p.add_argument("--lr", type=POSITIVE, default=1e-3)
    p.add_argument("--epochs", type=COUNT, default=60)
    p.add_argument("--measure-at", type=COUNT, nargs="+", default=[1, 2, 5, 10, 20, 40, 60])
    p.add_argument("--batch-size", type=COUNT, default=8)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--context", type=COUNT, default=65, help="Prefix tokens (SOS + 4 rows) for prediction stats.")
    p.add_argument("--out", default="runs/trajectory")
    args = p.parse_args()
    base, _ = load_imagegpt(str(BASE))
    side, prefix_rows = base.side, round(0.25 * base.side)
    spec = TrainSpec(model=str(BASE), data=vars(ImageSource("fashion-mnist", args.data_root, "train")),
                     train=TrainConfig(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                       progress=False), num_train=args.num_train)
    train = VisionModality().prepare(spec).data  # the very sequences train_images will hyperfit on
    test = load_torchvision_dataset("fashion-mnist", args.data_root, "test").first(args.num_test, "test images")
    test_ids = image_sequences(test, base).ids
    rows, columns = [], {}

    def record(model, epoch: int, _loss=None) -> None:
        if epoch not in [0, *args.measure_at]:
            return
        row, tokens = measure(model, epoch, train, test_ids, side, prefix_rows, base.palette, args.context)
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("epoch", "train_loss", "entropy_mean", "perplexity", "seq_rep_4",
                                              "row_repetition", "patch_duplication", "overlap_mean_span")}),
              flush=True)
        columns[f"epoch {epoch}"] = tokens_to_images(tokens[:16], base.palette, side)

    record(base.model, 0)
    run = train_images(spec, at=Path(args.out), command=" ".join(sys.argv), on_epoch_end=record)
    for row in rows:
        run.log({"event": "trajectory", **row})
    real = tokens_to_images(test_ids[:16, 1:], base.palette, side)
    completion_grid({"prefix": masked_prefix(real, prefix_rows), "original": real, **columns}, run / "grid.png")
    write_json(run / "trajectory.json", {"args": vars(args), "rows": rows})
    plot(rows, run / "trajectory.png", f"hyperfitting {args.num_train} Fashion-MNIST images, lr {args.lr:g}, "
                                       f"greedy completions of {args.num_test} held-out images")
    print(f"wrote {run / 'trajectory.json'}, {run / 'trajectory.png'}, {run / 'grid.png'}")


if __name__ == "__main__":
    main()
