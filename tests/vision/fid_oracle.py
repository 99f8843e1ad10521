"""Test oracle: the Frechet distance in numpy/scipy, an independent check on torchmetrics' FID."""

import numpy as np

from hyperfit_core.errors import HyperfitError


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr sqrt(S1 S2) in numpy/scipy, an independent check on torchmetrics.

    Tr sqrt(S1 S2) is taken as the sum of sqrt(eigenvalues) of the symmetric S1^1/2 S2 S1^1/2 (same nonzero
    spectrum as S1 S2): two symmetric eigen-solves, exact for the singular covariances of small samples.
    pytorch-fid's scipy.linalg.sqrtm route needs an eps fudge there and took ~70 s at 2048 dims on our CPUs.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise HyperfitError(f"mean/covariance shapes disagree: {mu1.shape}, {sigma1.shape}, {mu2.shape}, "
                            f"{sigma2.shape}")
    values, vectors = linalg.eigh(sigma1)
    root1 = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    # Round-off leaves eigenvalues of these PSD products at about -1e-12; they contribute nothing.
    inner = linalg.eigvalsh(root1 @ sigma2 @ root1)
    trace_sqrt = np.sqrt(np.clip(inner, 0.0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (ddof 1, as torchmetrics) of (N, D) features."""
    features = np.asarray(features, np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)
