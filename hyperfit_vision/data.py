"""Image sources -> `LabelledImages` (uint8 (N, side, side, 3) pixels plus where each image came from).

  cifar10, fashion-mnist               torchvision's datasets under --data-root (--download fetches them)
  path/to/folder                       every PNG/JPEG in it, in name order
  uoft-cs/cifar10, name:config:split   a Hugging Face dataset (the official code's CIFAR-10 source)
  path/saved_dataset                   a dataset saved with `save_to_disk`
  data.parquet, folder of *.parquet    parquet files with an image column

Images Pillow can convert (CMYK JPEGs, 16-bit PNGs, palette, grey) are converted to RGB and the conversion is
reported in `notes`; non-square images are centre-cropped (`crop="center"`, as torchvision users expect) or
refused (`crop="none"`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from hyperfit_core.errors import HyperfitError
from hyperfit_vision.images import IMAGE_SUFFIXES, LabelledImages, stack_images, to_rgb_array

TORCHVISION_DATASETS = ("cifar10", "fashion-mnist")
CROPS = ("center", "none")


def _read_image_file(path: Path, crop: str, notes: list[str]) -> np.ndarray:
    if path.is_symlink() and not path.exists():
        raise HyperfitError(f"{path}: a symlink to a missing file")
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb_array(image, str(path), crop, notes)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise HyperfitError(f"{path}: not a readable image ({exc})") from None


def load_image_folder(folder: str | Path, side: int | None = None, crop: str = "center") -> LabelledImages:
    """All PNG/JPEG files of `folder` in name order, resized to `side` (default: the first image's side)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HyperfitError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
    if not files:
        raise HyperfitError(f"no PNG or JPEG images in {folder}")
    notes: list[str] = []
    arrays = [_read_image_file(p, crop, notes) for p in files]
    return LabelledImages(stack_images(arrays, side), [p.name for p in files], torch.arange(len(files)), notes)


def load_torchvision_dataset(name: str, root: str | Path, split: str = "train", download: bool = False) -> LabelledImages:
    """CIFAR-10 (32x32 RGB) or Fashion-MNIST (28x28 grey, repeated to RGB) from torchvision's file layout."""
    import torchvision.datasets as tvd

    if split not in ("train", "test"):
        raise HyperfitError(f"unknown split {split!r} of {name}: use train or test")
    classes = {"cifar10": tvd.CIFAR10, "fashion-mnist": tvd.FashionMNIST}
    if name == "fashion-mnist" and not download:
        from hyperfit_vision.fashion import lay_out_fashion_mnist

        lay_out_fashion_mnist(root)  # from Debian's dataset-fashion-mnist package, when it is installed
    try:
        dataset = classes[name](root=str(root), train=split == "train", download=download)
    except RuntimeError as exc:
        raise HyperfitError(f"{name} not found under {root} ({exc}); pass --download with a network, "
                            "or --data-root pointing at an existing copy") from None
    except Exception as exc:  # urllib / socket errors: no network
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HyperfitError(f"downloading {name} failed ({reason}); without a network, put a copy in torchvision's "
                            f"layout under --data-root (now {root}) or pass --data with a local folder") from None
    data = torch.as_tensor(np.asarray(dataset.data), dtype=torch.uint8)
    if data.ndim == 3:
        data = data[..., None].expand(-1, -1, -1, 3).contiguous()
    return LabelledImages(data, [f"{name}/{split}/{i}" for i in range(len(data))], torch.arange(len(data)))


@dataclass
class ImageSource:
    """Where images come from; plain data, recorded in a run's config.json."""

    source: str = "cifar10"
    root: str = "data"
    split: str = "train"
    download: bool = False
    image_column: str | None = None
    crop: str = "center"

    def load(self) -> LabelledImages:
        if self.crop not in CROPS:
            raise HyperfitError(f"unknown --crop {self.crop!r}: use {' or '.join(CROPS)}")
        if self.source in TORCHVISION_DATASETS:
            return load_torchvision_dataset(self.source, self.root, self.split, self.download)
        path = Path(self.source).expanduser()
        if path.is_dir() and not _is_hf_folder(path):
            return load_image_folder(path, crop=self.crop)
        from hyperfit_vision.hf_images import load_hf_images

        return load_hf_images(self.source, self.split, self.image_column, self.crop)


def _is_hf_folder(path: Path) -> bool:
    """A save_to_disk folder or a folder of parquet files (rather than a folder of images)."""
    return any((path / name).exists() for name in ("dataset_info.json", "dataset_dict.json", "state.json")) or \
        any(path.glob("*.parquet"))
