"""What a metric is (hyperfit_core.metric_registry keeps the registered ones; hyperfit_core.metric_list is the
built-in list): a Metric and the words its fields take. Torch-free and adapter-free, like the registry."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass

# direction: which way is better
HIGHER, LOWER, CLOSER, NONE = "higher", "lower", "closer to reference", "none"
# modality: which scoring entry computes it (ANY: both)
TEXT, IMAGE, ANY = "text", "image", "any"
# needs: what a metric reads
TOKENS = "tokens"        # the generated token ids (text tokens, image palette ids of the generated region)
TEXTS = "texts"          # the decoded text of each generation
IMAGES = "images"        # the generated pixels
TRAIN = "train"          # the hyperfitting data's tokens
REFERENCE = "reference"  # the human continuation / real image of the same prompt, item by item
FEATURES = "features"    # outputs of a feature / scoring model (Inception features, an LM's states or perplexities)
MODEL = "model"          # the model under test's predictions
RATINGS = "ratings"      # human votes (hyperfit rate)
NEEDS = (TOKENS, TEXTS, IMAGES, TRAIN, REFERENCE, FEATURES, MODEL, RATINGS)
REAL_PREFIX = "real_"  # flat records (scripts/data_influence.py) put the real images' own value under real_<key>
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Metric:
    name: str  # the key in results JSON; a family has placeholders: "seq_rep_{n}"
    label: str  # table header, same placeholders: "seq-rep-{n}"
    definition: str  # one sentence, for docs/metrics.md
    direction: str
    modality: str
    needs: tuple[str, ...]
    per_item: bool = False  # a value per generation (for paired comparisons) beside the set's value
    digits: int = 3  # decimals in text tables
    compute: str | None = None  # "module:function(sample, **params) -> Scored | {name: Scored}"; None: made elsewhere
    settings: tuple[tuple[str, str], ...] = ()  # (parameter of compute, attribute of the scoring settings)
    enabled_by: str | None = None  # a settings attribute that must be set (e.g. a feature model's name)
    aliases: tuple[str, ...] = ()  # keys older results files used ("a/b": key b nested under a)
    made_by: str = ""  # where the value comes from when compute is None

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(_PLACEHOLDER.findall(self.name))

    def key(self, **params) -> str:
        missing = [p for p in self.placeholders if p not in params]
        if missing:
            raise KeyError(f"metric {self.name!r} needs {', '.join(missing)} to name its key")
        return self.name.format(**{p: params[p] for p in self.placeholders})

    def function(self):
        module, _, name = (self.compute or "").partition(":")
        if not name:
            raise KeyError(f"metric {self.name!r} has no compute function ({self.made_by or 'made elsewhere'})")
        return getattr(importlib.import_module(module), name)
