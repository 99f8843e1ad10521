"""Lay out Fashion-MNIST under <root>/FashionMNIST/raw from Debian's dataset-fashion-mnist (installed if missing).

    python scripts/fetch_fashion_mnist.py --root data
"""

from __future__ import annotations

import argparse

from hyperfit_vision.data import load_torchvision_dataset
from hyperfit_vision.fashion import lay_out_fashion_mnist

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="data")
    root = parser.parse_args().root
    raw = lay_out_fashion_mnist(root, install=True)
    for split in ("train", "test"):
        print(f"{split}: {len(load_torchvision_dataset('fashion-mnist', root, split))} images")
    print(raw)
