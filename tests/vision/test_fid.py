"""FID / KID with the real FID Inception weights on real CIFAR-10 pixels.

The weights must be cached first (`python scripts/fetch_inception.py`, as CI does); without them these tests
fail on purpose rather than skip, so a missing download can never pass for green.
"""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from hyperfit_core.errors import HyperfitError
from hyperfit_vision.data import load_image_folder
from tests.vision.fid_oracle import feature_stats, frechet_distance
from hyperfit_vision.fid import (
    InceptionFeatures,
    default_weights_path,
    fid_from_features,
    fid_kid,
    fid_kid_from_features,
    kid_from_features,
    resize_for_inception,
    resolve_weights,
    span_coordinates,
)

ROOT = Path(__file__).resolve().parents[2]
NOISE_LEVELS = (8.0, 32.0, 96.0)  # Gaussian sigma in 0..255 pixel units
N_NOISY = 12


@pytest.fixture(scope="module")
def weights():
    path = resolve_weights()
    if path is None:
        pytest.fail(f"FID Inception weights are not cached at {default_weights_path()}: run "
                    "`python scripts/fetch_inception.py` before the test suite (or set $HYPERFIT_INCEPTION)")
    return path


@pytest.fixture(scope="module")
def extractor(weights):
    return InceptionFeatures(weights, batch_size=16)


@pytest.fixture(scope="module")
def base():
    """The 20 bundled CIFAR-10 test images plus 4 mirrored ones: 24 real images."""
    images = load_image_folder(ROOT / "assets" / "cifar10-test-first20").images
    return torch.cat([images, images[:4].flip(2)])


@pytest.fixture(scope="module")
def base_features(extractor, base):
    return extractor(base)


@pytest.fixture(scope="module")
def noisy_features(extractor, base):
    generator = torch.Generator().manual_seed(0)
    out = {}
    for sigma in NOISE_LEVELS:
        noise = torch.randn(base[:N_NOISY].shape, generator=generator) * sigma
        out[sigma] = extractor((base[:N_NOISY].float() + noise).round().clamp(0, 255).to(torch.uint8))
    return out


@pytest.fixture(scope="module")
def noisy_fids(base_features, noisy_features):
    return {sigma: fid_from_features(base_features, feats) for sigma, feats in noisy_features.items()}


def numpy_fid(real, fake):
    """Straight from the 2048-dim features, with no change of coordinates: a few seconds of eigen-solves."""
    return frechet_distance(*feature_stats(real.numpy()), *feature_stats(fake.numpy()))


def test_features_are_float64_pool3_and_finite(base_features, base):
    assert base_features.shape == (len(base), 2048) and base_features.dtype == torch.float64
    assert torch.isfinite(base_features).all() and (base_features >= 0).all()  # pool3 follows a ReLU


def test_fid_of_a_set_against_itself_is_about_zero(base_features):
    assert abs(fid_from_features(base_features, base_features)) < 1e-2


def test_fid_grows_monotonically_with_noise(base_features, noisy_fids):
    fids = [noisy_fids[sigma] for sigma in NOISE_LEVELS]
    clean = fid_from_features(base_features, base_features[:N_NOISY])
    assert clean < fids[0] < fids[1] < fids[2], (clean, fids)


def test_torchmetrics_fid_equals_numpy_scipy_on_the_same_features(base_features, noisy_features, noisy_fids):
    sigma = NOISE_LEVELS[1]
    assert noisy_fids[sigma] == pytest.approx(numpy_fid(base_features, noisy_features[sigma]), abs=1e-3)


def test_span_coordinates_keep_every_fid_ingredient(base_features, noisy_features):
    real, fake = base_features, noisy_features[NOISE_LEVELS[0]]
    real_c, fake_c = span_coordinates(real, fake)
    assert real_c.shape == (len(real), len(real) + len(fake))
    (mu1, s1), (mu2, s2) = feature_stats(real.numpy()), feature_stats(fake.numpy())
    (mu1c, s1c), (mu2c, s2c) = feature_stats(real_c.numpy()), feature_stats(fake_c.numpy())
    assert np.sum((mu1c - mu2c) ** 2) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-9)
    assert np.trace(s1c) == pytest.approx(np.trace(s1), rel=1e-9)
    assert np.sum(s1c * s2c) == pytest.approx(np.sum(s1 * s2), rel=1e-9)  # Tr(S1 S2), both symmetric
    many = torch.rand(40, 16, dtype=torch.float64)  # more points than dims: left as they are
    assert torch.equal(span_coordinates(many[:20], many[20:])[0], many[:20])


def test_fid_kid_end_to_end_and_as_torchmetrics_feature_modules(extractor, base, base_features):
    result = fid_kid(base[:4], base[4:8], extractor=extractor)
    reference = fid_kid_from_features(base_features[:4], base_features[4:8])
    assert set(result) >= {"fid", "kid_mean", "kid_std"}
    assert result["fid"] == pytest.approx(reference["fid"], abs=1e-3)
    assert result["kid_mean"] == pytest.approx(reference["kid_mean"], abs=1e-6)
    # InceptionFeatures plugs straight into torchmetrics as a custom `feature=` module (NHWC uint8 in).
    fid = FrechetInceptionDistance(feature=extractor)
    fid.update(base[:4], real=True)
    # (its own compute() would run a dense 2048 x 2048 eigvals: correct, just slow on CPU; the state suffices)
    assert torch.allclose(fid.real_features_sum, base_features[:4].sum(dim=0), rtol=1e-4, atol=1e-4)
    with pytest.warns(UserWarning):
        kid = KernelInceptionDistance(feature=extractor, subsets=3, subset_size=4)
    kid.update(base[:4], real=True)
    kid.update(base[4:8], real=False)
    assert float(kid.compute()[0]) == pytest.approx(reference["kid_mean"], abs=1e-6)


def test_kid_is_finite_seeded_and_subset_size_is_capped(base_features, noisy_features):
    fake = noisy_features[NOISE_LEVELS[-1]]
    mean, std, subset = kid_from_features(base_features, fake)
    assert subset == N_NOISY  # min(1000, n_real, n_fake)
    assert math.isfinite(mean) and math.isfinite(std) and std > 0  # subsets of the 24 real images vary
    # With the subset as large as both sets every subset is the whole set: no spread at all.
    assert kid_from_features(base_features[:N_NOISY], fake)[1] == pytest.approx(0.0, abs=1e-9)
    sub = kid_from_features(base_features, fake, subset_size=8, subsets=20, seed=3)
    assert all(math.isfinite(v) for v in sub) and sub[1] > 0
    assert sub == kid_from_features(base_features, fake, subset_size=8, subsets=20, seed=3)
    assert mean > kid_from_features(base_features[:12], base_features[12:])[0]
    with pytest.raises(HyperfitError, match="subset size"):
        kid_from_features(base_features, fake, subset_size=N_NOISY + 1)


def test_frechet_distance_of_known_gaussians():
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 2.0])
    sigma1, sigma2 = np.eye(3), 4 * np.eye(3)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(9 + 3 * (1 + 4 - 2 * 2))


def test_one_resize_for_everything():
    images = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    x = resize_for_inception(images)
    assert x.shape == (2, 3, 299, 299) and x.dtype == torch.float32
    assert -1.0 <= x.min() and x.max() <= 127 / 128
    grey = resize_for_inception(torch.full((1, 32, 32, 3), 128, dtype=torch.uint8))
    assert grey.abs().max() < 1e-5
    big = torch.randint(0, 256, (1, 299, 299, 3), dtype=torch.uint8)
    assert torch.equal(resize_for_inception(big), (big.permute(0, 3, 1, 2).float() - 128) / 128)


def test_extractor_never_trains(extractor):
    extractor.train()
    assert not extractor.training and not extractor.net.training


@pytest.mark.parametrize("real, fake, message", [
    (torch.zeros(3, 32, 32, 3, dtype=torch.uint8), torch.zeros(3, 28, 28, 3, dtype=torch.uint8), "same size"),
    (torch.zeros(1, 32, 32, 3, dtype=torch.uint8), torch.zeros(3, 32, 32, 3, dtype=torch.uint8), "at least 2"),
    (torch.zeros(3, 32, 32, 3, dtype=torch.uint8), torch.zeros(1, 32, 32, 3, dtype=torch.uint8), "at least 2"),
    (torch.zeros(3, 32, 32, 3), torch.zeros(3, 32, 32, 3, dtype=torch.uint8), "uint8"),
    (torch.zeros(3, 3, 32, 32, dtype=torch.uint8), torch.zeros(3, 3, 32, 32, dtype=torch.uint8), r"\(N, H, W, 3\)"),
])
def test_bad_images_raise(real, fake, message):
    with pytest.raises(HyperfitError, match=message):
        fid_kid(real, fake, weights="/nonexistent/weights.pt")  # input checks come before loading weights


def test_bad_features_raise():
    with pytest.raises(HyperfitError, match="at least 2"):
        fid_kid_from_features(torch.zeros(1, 8), torch.zeros(4, 8))
    with pytest.raises(HyperfitError, match="dims"):
        fid_kid_from_features(torch.rand(4, 8), torch.rand(4, 6))
    with pytest.raises(HyperfitError, match="NaN"):
        fid_kid_from_features(torch.full((4, 8), float("nan")), torch.rand(4, 8))


def test_missing_weights_point_at_the_fetch_script(tmp_path, monkeypatch):
    images = torch.zeros(2, 32, 32, 3, dtype=torch.uint8)
    with pytest.raises(HyperfitError, match="fetch_inception.py"):
        fid_kid(images, images, weights=tmp_path / "missing.pt")
    monkeypatch.setenv("HYPERFIT_INCEPTION", str(tmp_path / "also-missing.pt"))
    with pytest.raises(HyperfitError, match="HYPERFIT_INCEPTION"):
        InceptionFeatures()
    # Nothing asked for, nothing cached, no torch-fidelity: no silent download attempt, one clear error.
    monkeypatch.delenv("HYPERFIT_INCEPTION")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr("torchmetrics.utilities.imports._TORCH_FIDELITY_AVAILABLE", False)
    assert resolve_weights() is None
    with pytest.raises(HyperfitError, match="fetch_inception.py"):
        InceptionFeatures()
    (tmp_path / "garbage.pt").write_bytes(b"not a model")
    with pytest.raises(HyperfitError, match="cannot load"):
        InceptionFeatures(tmp_path / "garbage.pt")


def test_features_run_on_the_device_asked_for(weights, monkeypatch):
    # on a GPU machine `--device cpu` must still mean CPU for the Inception network (it used to take CUDA whenever
    # CUDA was present); "auto" is resolved like every other --device, and an unknown device is one clear error
    from hyperfit_vision.scoring import ImageFid

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert next(InceptionFeatures(weights, device="cpu").net.parameters()).device.type == "cpu"
    assert next(ImageFid(weights, device="cpu").extractor.net.parameters()).device.type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert next(InceptionFeatures(weights, device="auto").net.parameters()).device.type == "cpu"
    with pytest.raises(HyperfitError, match="unknown --device"):
        InceptionFeatures(weights, device="tpu")


def test_weight_resolution_order(tmp_path, monkeypatch, weights):
    monkeypatch.setenv("HYPERFIT_INCEPTION", str(weights))
    assert resolve_weights() == weights  # env var
    explicit = tmp_path / "explicit.pt"
    explicit.write_bytes(b"")
    assert resolve_weights(explicit) == explicit  # an explicit path beats the env var
    monkeypatch.delenv("HYPERFIT_INCEPTION")
    monkeypatch.setenv("HOME", str(tmp_path))
    cached = tmp_path / ".cache" / "hyperfit" / "fid_inception_default_1.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert resolve_weights() == cached


def test_fetch_script_reuses_a_valid_cache_without_downloading(weights, tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("fetch_inception", ROOT / "scripts" / "fetch_inception.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module.subprocess, "run", lambda *a, **k: pytest.fail("tried to download"))
    if weights == default_weights_path():
        assert module.fetch_inception_weights() == weights
    if weights.name == "fid_inception_default_1.pt":
        assert module.fetch_inception_weights(weights.parent) == weights
    assert module._is_valid(weights)
    (tmp_path / "fid_inception_default_1.pt").write_bytes(b"corrupt")
    assert not module._is_valid(tmp_path / "fid_inception_default_1.pt")
