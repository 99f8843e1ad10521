import pytest
import torch

from hyperfit_core.decoding import generate_tokens
from hyperfit_core.errors import HyperfitError
from hyperfit_vision.completion import prefix_rows_for
from tests.vision.oracle import complete_images
from hyperfit_vision.model import load_imagegpt


@pytest.fixture(scope="module")
def image_model(tiny_imagegpt_dir):
    model, origin = load_imagegpt(str(tiny_imagegpt_dir))
    assert origin == "image processor"
    return model


def _tokens(image_model, n=4):
    pixels = torch.randint(0, image_model.n_colors, (n, 64), generator=torch.Generator().manual_seed(0))
    return torch.cat([torch.full((n, 1), image_model.sos), pixels], dim=1)


def test_prefix_rows_are_whole_rows():
    assert prefix_rows_for(0.25, 32) == 8  # 256 tokens after SOS
    assert prefix_rows_for(0.25, 16) == 4
    with pytest.raises(HyperfitError, match="whole rows"):
        prefix_rows_for(1.0, 32)
    with pytest.raises(HyperfitError, match="whole rows"):
        prefix_rows_for(0.0, 32)


def test_greedy_completion_keeps_the_prefix_and_is_deterministic(image_model):
    tokens = _tokens(image_model)
    a = complete_images(image_model.model, tokens, 2, 8, progress=False)
    b = complete_images(image_model.model, tokens, 2, 8, batch_size=3, progress=False)
    assert a.shape == (4, 64)
    assert torch.equal(a[:, :16], tokens[:, 1:17])
    assert torch.equal(a, b)
    assert a.max() < image_model.n_colors  # SOS is never predicted


def test_kv_cached_completion_equals_uncached_argmax(image_model):
    tokens = _tokens(image_model, n=2)
    cached = complete_images(image_model.model, tokens, 2, 8, progress=False)
    seq = tokens[:, :17]
    with torch.no_grad():
        while seq.shape[1] < 65:
            seq = torch.cat([seq, image_model.model(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(cached, seq[:, 1:])


def test_more_prefix_than_image_is_an_error(image_model):
    with pytest.raises(HyperfitError, match="prefix"):
        complete_images(image_model.model, _tokens(image_model), 8, 8, progress=False)


def test_full_image_fits_the_positions_without_overflow(image_model):
    # [SOS, p0..p62] is 64 inputs: all 64 pixels are scored without a 65th position
    tokens = _tokens(image_model)
    out = generate_tokens(image_model.model, tokens[:, :1], 64, progress=False)
    assert out.shape == (4, 65)


def test_hyperfitting_images_drives_loss_near_zero_and_recites_them(tiny_imagegpt_dir, image_folder_8px, tmp_path):
    from hyperfit_core.rundir import RunDir
    from hyperfit_core.sequences import TokenSequences
    from hyperfit_core.train import TrainConfig, hyperfit
    from hyperfit_vision.data import load_image_folder
    from hyperfit_vision.tokens import images_to_tokens

    image_model, _ = load_imagegpt(str(tiny_imagegpt_dir))
    images = load_image_folder(image_folder_8px).images[:4]
    tokens = images_to_tokens(images, image_model.palette, sos=image_model.sos)
    run = RunDir(tmp_path / "run")
    hyperfit(image_model.model, TokenSequences.from_ids(tokens), TrainConfig(lr=1e-2, epochs=200, batch_size=4,
                                                                            target_loss=0.05, progress=False), run)
    losses = [r["mean_loss"] for r in run.read_metrics() if r["event"] == "epoch"]
    assert losses[0] > 1.0 and losses[-1] < 0.05
    completed = complete_images(image_model.model, tokens, 2, 8, progress=False)
    assert torch.equal(completed, tokens[:, 1:])  # greedy recites the hyperfitting images from their prefix
