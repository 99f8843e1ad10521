"""Lay out Fashion-MNIST where torchvision.datasets.FashionMNIST reads it, from Debian's package (offline).

Debian's `dataset-fashion-mnist` installs the original idx .gz files in /usr/share/datasets/fashion-mnist/;
torchvision wants them unpacked under <root>/FashionMNIST/raw/ (given download=True with the .gz files already
there it still tries the network), so they are unpacked here. With a network, `--download` fetches them.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz"]


def lay_out_fashion_mnist(root: str | Path = "data", install: bool = False) -> Path:
    """Unpack the Debian copy into <root>/FashionMNIST/raw (apt-get installs it first when `install`)."""
    raw = Path(root) / "FashionMNIST" / "raw"
    have_debian = all((DEBIAN_DIR / f).is_file() for f in FILES)
    if not have_debian and install and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "dataset-fashion-mnist"], check=False,
                       stdout=subprocess.DEVNULL)
        have_debian = all((DEBIAN_DIR / f).is_file() for f in FILES)
    for name in FILES:
        target = raw / name[:-3]
        source = raw / name if (raw / name).is_file() else DEBIAN_DIR / name
        if not target.is_file() and source.is_file():
            raw.mkdir(parents=True, exist_ok=True)
            tmp = raw / f".{target.name}.tmp"
            with gzip.open(source, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.replace(target)
    return raw
