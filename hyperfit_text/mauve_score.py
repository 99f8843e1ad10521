"""MAUVE (Pillutla et al., NeurIPS 2021) of generated texts against human texts, computed by the `mauve-text`
package on features this project extracts and caches (hyperfit_text/text_features.py).

mauve-text reduces both feature sets with PCA, clusters them together with k-means into `num_buckets` clusters
and compares the two cluster histograms through a divergence frontier: 1 when the histograms match, near 0 when
the two sets fall into different clusters. The value depends on the number of texts, the clusters and the
seed, so all three are recorded beside it; its authors ask for a few thousand texts per side (MAUVE_NOTE).
"""

from __future__ import annotations

import numpy as np

from hyperfit_core.errors import HyperfitError

MAUVE_SEED = 25  # mauve-text's default k-means seed
RECOMMENDED_TEXTS = 5000  # texts per side in the MAUVE paper ("at least a few thousand")


def mauve_score(generated: np.ndarray, human: np.ndarray, num_buckets: int | str = "auto",
                seed: int = MAUVE_SEED) -> dict:
    """MAUVE of `generated` features ([n, d]) against `human` features ([m, d]), with mauve-text's defaults
    otherwise (scaling factor 5, 90% of the variance kept by PCA). num_buckets "auto" is mauve-text's rule:
    max(2, round(min(n, m) / 10)) clusters."""
    try:
        import mauve
    except ImportError:
        raise HyperfitError("MAUVE needs the mauve-text package: pip install 'hyperfit[quality]'") from None
    generated, human = np.asarray(generated, dtype=np.float32), np.asarray(human, dtype=np.float32)
    if generated.ndim != 2 or human.ndim != 2 or generated.shape[1] != human.shape[1]:
        raise HyperfitError(f"MAUVE needs two [texts, dims] feature sets of one width, got {generated.shape} and "
                            f"{human.shape}")
    if min(len(generated), len(human)) < 2:
        raise HyperfitError("MAUVE needs at least two texts on each side")
    if num_buckets != "auto" and (not isinstance(num_buckets, int) or num_buckets < 2):
        raise HyperfitError(f"MAUVE clusters must be 'auto' or an integer of at least 2, got {num_buckets!r}")
    # p is the human side, q the model's, as in mauve-text's own examples
    out = mauve.compute_mauve(p_features=human, q_features=generated, num_buckets=num_buckets, seed=seed,
                              verbose=False)
    # flat keys, prefixed: a condition's record holds them beside every other metric's
    return {"mauve": float(out.mauve), "mauve_frontier_integral": float(out.frontier_integral),
            "mauve_texts": len(generated), "mauve_human_texts": len(human), "mauve_clusters": int(out.num_buckets),
            "mauve_seed": seed, "mauve_feature_dim": int(generated.shape[1])}


def mauve_note(texts: int, clusters: int) -> str:
    """The small-sample caveat, stated as FID's is: how many texts the value rests on, and what that does to it."""
    note = f"MAUVE rests on {texts} texts per condition in {clusters} clusters."
    if texts < RECOMMENDED_TEXTS:
        note += (f" That is fewer than the few thousand its authors ask for ({RECOMMENDED_TEXTS} in the paper): "
                 "with few texts MAUVE is biased upward and varies between runs, so compare conditions only at the "
                 "same texts, clusters and seed, and by the spread over generation seeds.")
    return note
