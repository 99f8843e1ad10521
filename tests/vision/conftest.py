from pathlib import Path

import pytest
import torch

from hyperfit_vision.model import build_imagegpt

CIFAR_DIR = Path(__file__).resolve().parents[2] / "assets" / "cifar10-test-first20"


def grid_palette(levels=(0, 128, 255)) -> torch.Tensor:
    """An integer palette (27 colours) so token -> image -> token round trips are exact."""
    return torch.tensor([[r, g, b] for r in levels for g in levels for b in levels], dtype=torch.float32)


@pytest.fixture(scope="session")
def tiny_imagegpt_dir(tmp_path_factory):
    """A 2-layer ImageGPT for 8x8 images saved with save_pretrained (+ its palette as an image processor)."""
    path = tmp_path_factory.mktemp("tiny-imagegpt")
    build_imagegpt(8, grid_palette(), n_layer=2, n_embd=32, n_head=2, seed=0).save(path)
    return path


@pytest.fixture(scope="session")
def image_folder_8px(tmp_path_factory):
    """The 20 shipped CIFAR-10 images, downsampled to 8x8 PNGs."""
    from PIL import Image

    path = tmp_path_factory.mktemp("images8")
    for file in sorted(CIFAR_DIR.glob("*.png"))[:12]:
        Image.open(file).convert("RGB").resize((8, 8), Image.Resampling.BOX).save(path / file.name)
    return path
