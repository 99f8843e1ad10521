"""The text modality as its `hyperfit.modalities` entry point gives it (hyperfit_core.adapters): torch-free."""

from hyperfit_core.adapters import Adapter, Rating
from hyperfit_core.formats import GENERATION_TEXTS

# `text generate` writes NAME.generations.jsonl in the rating page's own text format
ADAPTER = Adapter(name="text", commands="hyperfit_text.cli:text",
                  rating=Rating(files=GENERATION_TEXTS, shows="text", what="text"))
