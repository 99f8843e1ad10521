"""Images from Hugging Face datasets: a hub name (`uoft-cs/cifar10`, `name:config:split`), a folder saved with
`save_to_disk`, or parquet files. The image column is the first `datasets.Image` feature, unless given."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hyperfit_core.dataset_names import parse_dataset_spec
from hyperfit_core.errors import HyperfitError
from hyperfit_vision.images import IMAGE_SUFFIXES, LabelledImages, stack_images, to_rgb_array

_LIKELY_COLUMNS = ("img", "image", "images", "pixel_values")


def _open_dataset(source: str, split: str):
    import datasets

    path = Path(source).expanduser()
    if path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet"))):
        files = [str(path)] if path.is_file() else sorted(str(p) for p in path.glob("*.parquet"))
        if not files or (path.suffix == ".parquet" and not path.is_file()):
            raise HyperfitError(f"parquet file not found: {source}")
        return datasets.load_dataset("parquet", data_files=files, split="train"), "parquet"
    if path.is_dir():
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise HyperfitError(f"{source} has splits {', '.join(loaded)}, not {split!r}; pass --split")
            loaded = loaded[split]
        return loaded, "save_to_disk"
    if path.suffix.lower() in IMAGE_SUFFIXES or source.startswith((".", "/", "~")):
        raise HyperfitError(f"image data not found: {source} (a folder of images, a dataset name, or parquet)")
    name, config, split = parse_dataset_spec(source, split)
    try:
        return datasets.load_dataset(name, config, split=split), "hub"
    except Exception as exc:  # datasets raises many types (ConnectionError, FileNotFoundError, ValueError...)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HyperfitError(f"cannot load dataset {name!r} (config {config}, split {split}): {reason}; offline, "
                            "pass a save_to_disk folder, parquet files or an image folder") from None


def _image_column(data, given: str | None, source: str) -> str:
    import datasets

    if given is not None:
        if given not in data.column_names:
            raise HyperfitError(f"{source} has no column {given!r} (columns: {', '.join(data.column_names)})")
        return given
    typed = [name for name, feature in data.features.items() if isinstance(feature, datasets.Image)]
    named = [name for name in _LIKELY_COLUMNS if name in data.column_names]
    if typed or named:
        return (typed or named)[0]
    raise HyperfitError(f"no image column in {source} (columns: {', '.join(data.column_names)}); "
                        "pass --image-column")


def _as_pil(value, where: str) -> Image.Image:
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict) and value.get("bytes"):
        return Image.open(io.BytesIO(value["bytes"]))
    if isinstance(value, dict) and value.get("path"):
        return Image.open(value["path"])
    if isinstance(value, (list, np.ndarray)):
        return Image.fromarray(np.asarray(value, dtype=np.uint8))
    raise HyperfitError(f"{where}: not an image ({type(value).__name__})")


def load_hf_images(source: str, split: str = "train", image_column: str | None = None,
                   crop: str = "center") -> LabelledImages:
    data, kind = _open_dataset(source, split)
    if len(data) == 0:
        raise HyperfitError(f"{source} holds no rows")
    column = _image_column(data, image_column, source)
    notes: list[str] = []
    arrays = []
    for index, value in enumerate(data[column]):
        where = f"{source} row {index}"
        try:
            with _as_pil(value, where) as image:
                image.load()
                arrays.append(to_rgb_array(image, where, crop, notes))
        except HyperfitError:
            raise
        except Exception as exc:
            raise HyperfitError(f"{where}: not a readable image ({exc})") from None
    label = source if kind != "hub" else f"{source}/{split}"
    return LabelledImages(stack_images(arrays), [f"{label}/{i}" for i in range(len(arrays))], torch.arange(len(arrays)),
                          notes)
