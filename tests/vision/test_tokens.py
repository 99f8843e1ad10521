import numpy as np
import pytest
import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import tokens_to_rgb
from hyperfit_vision.data import load_image_folder
from hyperfit_vision.palette import kmeans_palette, load_palette_file
from hyperfit_vision.tokens import images_to_tokens, tokens_to_images
from tests.vision.conftest import CIFAR_DIR, grid_palette


def test_round_trip_is_exact_for_palette_colours():
    palette = grid_palette()
    tokens = torch.randint(0, len(palette), (5, 16 * 16), generator=torch.Generator().manual_seed(0))
    images = tokens_to_images(tokens, palette, 16)
    assert images.dtype == torch.uint8 and images.shape == (5, 16, 16, 3)
    assert torch.equal(images_to_tokens(images, palette), tokens)


def test_sos_is_prepended_and_row_major_order():
    palette = grid_palette()
    images = torch.zeros((1, 2, 2, 3), dtype=torch.uint8)
    images[0, 0, 1] = 255  # top-right pixel white
    tokens = images_to_tokens(images, palette, sos=27)
    assert tokens.shape == (1, 5) and tokens[0, 0] == 27
    assert tokens[0, 1:].tolist() == [0, 26, 0, 0]


def test_kmeans_palette_is_seeded_and_fits_the_colours():
    images = load_image_folder(CIFAR_DIR).images
    a = kmeans_palette(images, 16, seed=0)
    assert torch.equal(a, kmeans_palette(images, 16, seed=0))
    assert a.shape == (16, 3) and a.min() >= 0 and a.max() <= 255
    # quantisation error with 16 fitted colours is far below that of 16 random colours
    fitted = tokens_to_images(images_to_tokens(images, a), a, 32).float()
    rand = torch.rand(16, 3, generator=torch.Generator().manual_seed(0)) * 255
    random = tokens_to_images(images_to_tokens(images, rand), rand, 32).float()
    assert (fitted - images.float()).abs().mean() < 0.6 * (random - images.float()).abs().mean()


def test_palette_files(tmp_path):
    import numpy as np

    np.save(tmp_path / "p.npy", np.array([[-1.0, 0.0, 1.0]], dtype=np.float32))
    assert torch.allclose(load_palette_file(tmp_path / "p.npy"), torch.tensor([[0.0, 127.5, 255.0]]))
    (tmp_path / "p.txt").write_text("0 10 20\n30 40 50\n")
    assert load_palette_file(tmp_path / "p.txt").shape == (2, 3)
    (tmp_path / "bad.txt").write_text("1 2\n")
    with pytest.raises(HyperfitError, match="k x 3"):
        load_palette_file(tmp_path / "bad.txt")
    with pytest.raises(HyperfitError, match="not found"):
        load_palette_file(tmp_path / "missing.npy")


def test_vision_decodes_tokens_as_rate_does_and_as_it_always_did():
    """One decoding (hyperfit_core.formats.tokens_to_rgb) for vision and hyperfit_rate: the palette rounded half
    to even and clipped, exactly what tokens_to_images computed in torch before."""
    palette = torch.tensor([[0.5, 1.5, 2.5], [254.5, 255.7, -3.0], [127.49, 127.5, 128.5]], dtype=torch.float32)
    tokens = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 1]])
    before = palette.round().clamp(0, 255).to(torch.uint8)[tokens].reshape(2, 2, 2, 3)
    assert torch.equal(tokens_to_images(tokens, palette, 2), before)
    assert np.array_equal(tokens_to_rgb(tokens.numpy(), palette.numpy(), 2), before.numpy())
