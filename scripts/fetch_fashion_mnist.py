"""Lay out Fashion-MNIST where torchvision.datasets.FashionMNIST reads it, from Debian's package (offline).

Debian's `dataset-fashion-mnist` installs the original idx .gz files in /usr/share/datasets/fashion-mnist/;
torchvision wants them under <root>/FashionMNIST/raw/ and, given download=True with the .gz files already
there, it still tries the network, so we unpack them ourselves. With a network, torchvision downloads them.

    python scripts/fetch_fashion_mnist.py --root data
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
from pathlib import Path

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz"]


def fetch_fashion_mnist(root: str | Path = "data") -> Path:
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    if not all((DEBIAN_DIR / f).is_file() for f in FILES) and not all((raw / f).is_file() for f in FILES):
        if shutil.which("apt-get"):
            subprocess.run(["apt-get", "install", "-y", "-q", "dataset-fashion-mnist"], check=False,
                           stdout=subprocess.DEVNULL)
    for name in FILES:
        target = raw / name[:-3]
        source = raw / name if (raw / name).is_file() else DEBIAN_DIR / name
        if not target.is_file() and source.is_file():
            with gzip.open(source, "rb") as src, open(raw / f".{target.name}.tmp", "wb") as dst:
                shutil.copyfileobj(src, dst)
            (raw / f".{target.name}.tmp").replace(target)
    import torchvision.datasets as tvd

    for train in (True, False):
        try:  # finds the unpacked files; downloads only if they are missing
            tvd.FashionMNIST(root=str(root), train=train, download=True)
        except Exception as exc:
            sys.exit(f"error: Fashion-MNIST is not available under {raw}: {exc}\n"
                     "install Debian's dataset-fashion-mnist or run with a network")
    return raw


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="data")
    print(fetch_fashion_mnist(parser.parse_args().root))
