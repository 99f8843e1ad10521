"""Modality-agnostic hyperfitting: token sequences, the training loop, decoding, blockers, metrics, run dirs.

This package never imports hyperfit_vision or hyperfit_text; adapters build on it.
"""

from hyperfit_core.errors import HyperfitError

__version__ = "0.1.0"
__all__ = ["HyperfitError", "__version__"]
