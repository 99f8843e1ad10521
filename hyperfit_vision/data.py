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

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from hyperfit_core.errors import HyperfitError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
_DIRECT_MODES = {"RGB", "RGBA", "L", "LA", "P", "1"}
TORCHVISION_DATASETS = ("cifar10", "fashion-mnist")
CROPS = ("center", "none")


@dataclass
class LabelledImages:
    images: torch.Tensor  # uint8 (N, side, side, 3)
    names: list[str]  # file name or "<dataset>/<split>/<index>"
    source_index: torch.Tensor  # index in the source the images were drawn from
    notes: list[str] = field(default_factory=list)  # conversions made while loading, for the run log

    def __len__(self) -> int:
        return len(self.images)

    @property
    def side(self) -> int:
        return self.images.shape[1]

    def subset(self, index) -> "LabelledImages":
        index = torch.as_tensor(index, dtype=torch.long)
        return LabelledImages(self.images[index], [self.names[i] for i in index.tolist()], self.source_index[index],
                              self.notes)

    def first(self, count: int | None, what: str = "images") -> "LabelledImages":
        """The first `count` images (None = all); asking for more than there are is an error naming both."""
        if count is None:
            return self
        if count < 1:
            raise HyperfitError(f"the number of {what} must be at least 1, got {count}")
        if count > len(self):
            raise HyperfitError(f"asked for {count} {what} but the data holds {len(self)}; "
                                "pass --num-eval all for every one")
        return self.subset(torch.arange(count))

    def resized(self, side: int | None) -> "LabelledImages":
        if side is None or side == self.side:
            return self
        return LabelledImages(resize_images(self.images, side), self.names, self.source_index, self.notes)


def resize_images(images: torch.Tensor, side: int) -> torch.Tensor:
    """Box-filter (area) resize of uint8 (N, H, W, 3) to side x side, as PIL would downsample a photo."""
    out = [np.asarray(Image.fromarray(im.numpy()).resize((side, side), Image.Resampling.BOX)) for im in images]
    return torch.from_numpy(np.stack(out)) if out else images


def to_rgb_array(image: Image.Image, name: str, crop: str, notes: list[str]) -> np.ndarray:
    """A PIL image as uint8 RGB, converting what Pillow can convert and cropping to a square."""
    mode = image.mode
    if mode in _DIRECT_MODES:
        array = np.array(image.convert("RGB"))
    elif mode == "CMYK" or mode == "YCbCr":
        array = np.array(image.convert("RGB"))
        _note(notes, f"{mode} images converted to RGB")
    elif mode.startswith("I"):  # 16-bit grey PNGs open as I;16 / I
        grey = (np.asarray(image).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8)
        array = np.repeat(grey[..., None], 3, axis=2)
        _note(notes, f"16-bit images ({mode}) reduced to 8 bits")
    else:
        raise HyperfitError(f"{name}: unsupported image mode {mode} (use RGB, grey, palette, CMYK or 16-bit)")
    height, width = array.shape[:2]
    if height != width:
        if crop == "none":
            raise HyperfitError(f"{name}: image is {width}x{height}; it must be square (or pass --crop center)")
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        array = array[top:top + side, left:left + side]
        _note(notes, "non-square images centre-cropped")
    return np.ascontiguousarray(array)


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


def _read_image_file(path: Path, crop: str, notes: list[str]) -> np.ndarray:
    if path.is_symlink() and not path.exists():
        raise HyperfitError(f"{path}: a symlink to a missing file")
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb_array(image, str(path), crop, notes)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise HyperfitError(f"{path}: not a readable image ({exc})") from None


def _stack(arrays: list[np.ndarray], side: int | None = None) -> torch.Tensor:
    side = side or arrays[0].shape[0]
    return torch.stack([torch.from_numpy(a) if a.shape[0] == side else resize_images(torch.from_numpy(a)[None], side)[0]
                        for a in arrays])


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
    return LabelledImages(_stack(arrays, side), [p.name for p in files], torch.arange(len(files)), notes)


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
