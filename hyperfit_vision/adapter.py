"""The vision modality as its `hyperfit.modalities` entry point gives it (hyperfit_core.adapters): torch-free."""

from hyperfit_core.adapters import Adapter, Rating
from hyperfit_core.formats import COMPLETIONS

# `vision complete` / `benchmark` / `demo` write NAME.completions.safetensors, the rating page's image format
ADAPTER = Adapter(name="vision", commands="hyperfit_vision.cli:vision",
                  rating=Rating(files=COMPLETIONS, shows="images", what="image"))
