"""Image sources: CIFAR-10 and Fashion-MNIST through torchvision, or any folder of PNG/JPEG files.

Every loader returns `LabelledImages`: uint8 (N, side, side, 3) pixels plus where each image came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from hyperfit_core.errors import HyperfitError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
_CONVERTIBLE_MODES = {"RGB", "RGBA", "L", "LA", "P", "1"}
DATASETS = ("cifar10", "fashion-mnist")


@dataclass
class LabelledImages:
    images: torch.Tensor  # uint8 (N, side, side, 3)
    names: list[str]  # file name or "<dataset>/<split>/<index>"
    source_index: torch.Tensor  # index in the source the images were drawn from

    def __len__(self) -> int:
        return len(self.images)

    @property
    def side(self) -> int:
        return self.images.shape[1]

    def subset(self, index) -> "LabelledImages":
        index = torch.as_tensor(index, dtype=torch.long)
        return LabelledImages(self.images[index], [self.names[i] for i in index.tolist()], self.source_index[index])

    def resized(self, side: int) -> "LabelledImages":
        if side == self.side:
            return self
        return LabelledImages(resize_images(self.images, side), self.names, self.source_index)


def resize_images(images: torch.Tensor, side: int) -> torch.Tensor:
    """Box-filter (area) resize of uint8 (N, H, W, 3) to side x side, as PIL would downsample a photo."""
    out = [np.asarray(Image.fromarray(im.numpy()).resize((side, side), Image.Resampling.BOX)) for im in images]
    return torch.from_numpy(np.stack(out)) if out else images


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in _CONVERTIBLE_MODES:
                raise HyperfitError(f"{path}: unsupported image mode {image.mode} (use RGB, RGBA, grey or palette)")
            array = np.array(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise HyperfitError(f"{path}: not a readable image ({exc})") from None
    if array.shape[0] != array.shape[1]:
        raise HyperfitError(f"{path}: image is {array.shape[1]}x{array.shape[0]}; only square images are supported")
    return array


def load_image_folder(folder: str | Path, side: int | None = None) -> LabelledImages:
    """All PNG/JPEG files of `folder` in name order, resized to `side` (default: the first image's side)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HyperfitError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise HyperfitError(f"no PNG or JPEG images in {folder}")
    arrays = [_read_image(p) for p in files]
    side = side or arrays[0].shape[0]
    images = torch.stack([torch.from_numpy(a) if a.shape[0] == side else resize_images(torch.from_numpy(a)[None], side)[0]
                          for a in arrays])
    return LabelledImages(images, [p.name for p in files], torch.arange(len(files)))


def load_torchvision_dataset(name: str, root: str | Path, split: str = "train", download: bool = False) -> LabelledImages:
    """CIFAR-10 (32x32 RGB) or Fashion-MNIST (28x28 grey, repeated to RGB) from torchvision's file layout."""
    import torchvision.datasets as tvd

    if split not in ("train", "test"):
        raise HyperfitError(f"unknown split {split!r}: use train or test")
    classes = {"cifar10": tvd.CIFAR10, "fashion-mnist": tvd.FashionMNIST}
    if name not in classes:
        raise HyperfitError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)} or an image folder")
    try:
        dataset = classes[name](root=str(root), train=split == "train", download=download)
    except RuntimeError as exc:
        raise HyperfitError(f"{name} not found under {root} ({exc}); pass --download with a network, "
                            "or --data-root pointing at an existing copy") from None
    data = torch.as_tensor(np.asarray(dataset.data), dtype=torch.uint8)
    if data.ndim == 3:
        data = data[..., None].expand(-1, -1, -1, 3).contiguous()
    return LabelledImages(data, [f"{name}/{split}/{i}" for i in range(len(data))], torch.arange(len(data)))


def load_images(source: str, root: str | Path = "data", split: str = "train", download: bool = False,
                side: int | None = None) -> LabelledImages:
    """`source` is a dataset name (cifar10, fashion-mnist) or a folder of images."""
    if source in DATASETS:
        images = load_torchvision_dataset(source, root, split, download)
    else:
        images = load_image_folder(source)
    return images.resized(side) if side else images
