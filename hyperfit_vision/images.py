"""Images as the vision adapter holds them: `LabelledImages` (uint8 (N, side, side, 3) pixels plus where each image
came from), and the conversions every image source shares (to RGB, square crop, box resize, stacking).
hyperfit_vision.data and hyperfit_vision.hf_images both build on this module; it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from hyperfit_core.errors import HyperfitError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
_DIRECT_MODES = {"RGB", "RGBA", "L", "LA", "P", "1"}


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


def stack_images(arrays: list[np.ndarray], side: int | None = None) -> torch.Tensor:
    """uint8 (H, W, 3) arrays as one (N, side, side, 3) tensor; a different size is resized (default side: the
    first image's)."""
    side = side or arrays[0].shape[0]
    return torch.stack([torch.from_numpy(a) if a.shape[0] == side else resize_images(torch.from_numpy(a)[None], side)[0]
                        for a in arrays])
