"""The one list of metrics: each metric's key in results JSON, its label, direction, modality and what it needs.

Results files (`text evaluate`, `vision benchmark`, scripts/data_influence.py, ...) write metric values under the
keys registered here, and tables and scripts read them back through `read` / `label`, never by rebuilding a key.
A family registers one name with a placeholder: `key("seq_rep_{n}", n=4)` is "seq_rep_4", and
`lookup("seq_rep_4")` gives the metric and {"n": 4} back. Keys of older results files are aliases of the metric
they name (`read(entry, "type_token_ratio")` also finds "ttr_tokens_last96" or "ttr"), so every committed JSON
stays readable.

Torch-free and adapter-free (the rating app imports it): a metric's `compute` is a "module:function" string,
imported only when something scores (hyperfit_core.scoring). docs/metrics.md lists every metric (its table is
`markdown()`, checked by a test) and says how to add one.
"""

from __future__ import annotations

import re

from hyperfit_core import metric_list
from hyperfit_core.metric_spec import (  # noqa: F401  (the registry's vocabulary, re-exported)
    ANY, CLOSER, FEATURES, HIGHER, IMAGE, IMAGES, LOWER, MODEL, NEEDS, NONE, RATINGS, REAL_PREFIX, REFERENCE, TEXT,
    TEXTS, TOKENS, TRAIN, Metric, _PLACEHOLDER)


REGISTRY: dict[str, Metric] = {}
# keys that describe a record (what was scored, how many) rather than measure it: {key: meaning}
FIELDS: dict[str, str] = {}


def _pattern(template: str) -> re.Pattern:
    return re.compile("".join(f"(?P<{part}>-?\\d+)" if i % 2 else re.escape(part)
                              for i, part in enumerate(_PLACEHOLDER.split(template))) + r"\Z")


def register(metric: Metric) -> Metric:
    """Add a metric (its name and aliases must name no other metric); returns it."""
    if metric.direction not in (HIGHER, LOWER, CLOSER, NONE) or metric.modality not in (TEXT, IMAGE, ANY):
        raise ValueError(f"metric {metric.name!r}: unknown direction or modality")
    if set(metric.needs) - set(NEEDS):
        raise ValueError(f"metric {metric.name!r}: unknown needs {set(metric.needs) - set(NEEDS)}")
    for spelling in (metric.name, *metric.aliases):
        found = _find(spelling) if "{" not in spelling else None  # a fixed key another family already covers
        if spelling in REGISTRY or spelling in FIELDS or (found and found[0] is not metric):
            raise ValueError(f"metric key {spelling!r} is taken")
    REGISTRY[metric.name] = metric
    return metric


def register_field(name: str, meaning: str) -> None:
    """A key that describes a record (what was scored, how many) rather than measuring it."""
    if name in FIELDS or lookup(name, None):
        raise ValueError(f"key {name!r} is taken")
    FIELDS[name] = meaning


def metrics(modality: str | None = None) -> list[Metric]:
    """Registered metrics in registration order; with a modality, those its scoring entry computes."""
    return [m for m in REGISTRY.values() if modality is None or m.modality in (modality, ANY)]


def get(name: str) -> Metric:
    if name not in REGISTRY:
        raise KeyError(f"no metric {name!r} is registered (docs/metrics.md lists them)")
    return REGISTRY[name]


def key(name: str, **params) -> str:
    """The results key of metric `name` (a family needs its placeholders: key("self_bleu{order}", order=4))."""
    return get(name).key(**params)


def label(name: str, **params) -> str:
    metric = get(name)
    return metric.label.format(**{p: params.get(p, "n") for p in metric.placeholders})


def label_of(results_key: str) -> str:
    """The label of whatever metric a results key names: "seq_rep_4" -> "seq-rep-4"."""
    metric, params = lookup(results_key)
    return label(metric.name, **params)


def _find(results_key: str) -> tuple[Metric, dict] | None:
    for metric in REGISTRY.values():
        for spelling in (metric.name, *metric.aliases):
            match = _pattern(spelling).match(results_key)
            if match:
                return metric, {k: int(v) for k, v in match.groupdict().items()}
    return None


_MISSING = object()


def lookup(results_key: str, default=_MISSING) -> tuple[Metric, dict]:
    """(metric, its parameters) a results key names, old spellings included: "ttr_tokens_last96" ->
    (type_token_ratio, {"last": 96})."""
    found = _find(results_key)
    if found is None:
        if default is _MISSING:
            raise KeyError(f"{results_key!r} names no registered metric")
        return default
    return found


def _nested(mapping, path: str):
    for part in path.split("/"):
        if not isinstance(mapping, dict) or part not in mapping:
            return _MISSING
        mapping = mapping[part]
    return mapping


def read(mapping: dict, name: str, default=None, **params):
    """The value of metric `name` in a results record, under its key or an older one (default if absent).

    Parameters that are placeholders pick the key ("self_bleu{order}", order=4); others pick among old keys
    that carried them ("ttr_tokens_last{last}", last=96). Two old keys that both fit are an error, not a guess."""
    metric = get(name)
    if all(p in params for p in metric.placeholders):
        value = _nested(mapping, metric.key(**params))
        if value is not _MISSING:
            return value
    hits = []
    for alias in metric.aliases:
        if "{" not in alias:
            value = _nested(mapping, alias)
            if value is not _MISSING:
                hits.append((alias, value))
            continue
        pattern = _pattern(alias)
        for candidate, value in mapping.items():
            match = pattern.match(str(candidate))
            if match and all(params.get(k, int(v)) == int(v) for k, v in match.groupdict().items()):
                hits.append((candidate, value))
    if len(hits) > 1:
        raise KeyError(f"{', '.join(k for k, _ in hits)} all name {name!r}: say which {params or 'parameters'}")
    return hits[0][1] if hits else default


def written_keys(record: dict) -> list[str]:
    """The keys of a results record that are neither a registered metric's key as written now nor a registered
    field (an empty list for every record this version writes; old files list their old spellings)."""
    odd = []
    for results_key in record:
        found = lookup(results_key, None)
        if results_key not in FIELDS and (found is None or found[0].key(**found[1]) != results_key):
            odd.append(results_key)
    return odd


def same_metric(a: str, b: str) -> bool:
    """Whether two results keys name one metric, with equal values of the parameters both spell out ("ttr" and
    "type_token_ratio" do; "ttr_tokens_last64" and "ttr_tokens_last96" do not)."""
    found_a, found_b = lookup(a, None), lookup(b, None)
    if not found_a or not found_b or found_a[0] is not found_b[0]:
        return False
    return all(found_a[1][p] == found_b[1][p] for p in found_a[1].keys() & found_b[1].keys())


def find_key(mapping: dict, results_key: str) -> str | None:
    """The key of `mapping` that names the same metric as `results_key` (an older or newer spelling), if one."""
    hits = [k for k in mapping if isinstance(k, str) and same_metric(k, results_key)]
    return hits[0] if len(hits) == 1 else None


def markdown() -> str:
    """The table of docs/metrics.md: every metric with its definition, direction, modality and needs."""
    lines = ["| key | label | definition | better | modality | needs | per item | old keys |",
             "|---|---|---|---|---|---|---|---|"]
    for m in REGISTRY.values():
        old = ", ".join(f"`{a}`" for a in m.aliases) or "-"
        lines.append(f"| `{m.name}` | {m.label} | {m.definition} | {m.direction} | {m.modality} | "
                     f"{', '.join(m.needs)} | {'yes' if m.per_item else 'no'} | {old} |")
    return "\n".join(lines) + "\n"


for _metric in metric_list.METRICS:  # the built-in metrics and record fields, registered once on import
    register(_metric)
for _name, _meaning in metric_list.FIELDS.items():
    register_field(_name, _meaning)
