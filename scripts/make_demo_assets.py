"""Write the Fashion-MNIST images the offline demo ships with (assets/fashion-mnist-demo/).

128 random training images (the demo's hyperfitting set) and the first 16 test images (held out), as
28x28 grey PNGs named <split>_<index>_<label>.png. Needs data/FashionMNIST (scripts/fetch_fashion_mnist.py).

    python scripts/make_demo_assets.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image

from hyperfit_core.options import COUNT
from hyperfit_vision.fashion import lay_out_fashion_mnist


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="data")
    p.add_argument("--out", default="assets/fashion-mnist-demo")
    p.add_argument("--num-train", type=COUNT, default=128)
    p.add_argument("--num-test", type=COUNT, default=16)
    args = p.parse_args()
    import torchvision.datasets as tvd

    lay_out_fashion_mnist(args.data_root, install=True)
    for split, count in (("train", args.num_train), ("test", args.num_test)):
        data = tvd.FashionMNIST(args.data_root, train=split == "train")
        index = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:count] if split == "train" \
            else torch.arange(count)
        folder = Path(args.out) / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in index.tolist():
            Image.fromarray(data.data[i].numpy(), mode="L").save(folder / f"{split}_{i:05d}_{int(data.targets[i])}.png")
    (Path(args.out) / "SOURCE.md").write_text(
        "# fashion-mnist-demo\n\nFashion-MNIST (Zalando Research, MIT licence), from Debian's `dataset-fashion-mnist`.\n"
        f"`train/`: {args.num_train} random training-split images (seed 0); `test/`: the first {args.num_test} test-split "
        "images. File names: `<split>_<index>_<label>.png`.\n\nRe-create: `python scripts/make_demo_assets.py`.\n")


if __name__ == "__main__":
    main()
