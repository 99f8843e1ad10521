"""The metric registry (hyperfit_core/metric_registry.py): keys named once, old spellings still read, docs in step,
and a new metric that needs a feature model is one registry entry plus its compute function."""

import json
import runpy
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from hyperfit_core import metric_registry as registry
from hyperfit_core.scoring import Scored
from hyperfit_text.scoring import score_text

ROOT = Path(__file__).resolve().parents[2]
MEASUREMENTS = ROOT / "docs" / "measurements"


def test_families_name_their_keys_and_keys_name_their_metric_back():
    assert registry.key("seq_rep_{n}", n=4) == "seq_rep_4" and registry.key("self_bleu{order}", order=3) == "self_bleu3"
    assert registry.label_of("seq_rep_2") == "seq-rep-2" and registry.label_of("top5_prob_mean") == "top-5 prob"
    for metric in registry.metrics():
        params = {p: 3 for p in metric.placeholders}
        found, found_params = registry.lookup(metric.key(**params))
        assert found is metric and found_params == params
    with pytest.raises(KeyError, match="needs order"):
        registry.key("self_bleu{order}")
    with pytest.raises(KeyError, match="no metric"):
        registry.key("self_bleu4")  # the family is registered, not each order


def test_the_type_token_ratio_has_one_name_and_its_old_ones_still_read():
    text = json.loads((MEASUREMENTS / "text_results.json").read_text())["runs"]["greedy"]  # written before
    assert registry.read(text, "type_token_ratio") == text["ttr_tokens_last64"]
    assert registry.read(text, "type_token_ratio", last=64) == text["ttr_tokens_last64"]
    assert registry.read(text, "type_token_ratio", last=96) is None  # another window is not this one
    assert registry.read(text, "word_type_token_ratio") == text["ttr_words_last64"]
    assert registry.read(text, "overlap_max_span") == text["overlap"]["max_span"]
    curve = json.loads((MEASUREMENTS / "trainable_cpu.json").read_text())["results"]["human_reference"]
    curve = curve["length_curve"]["32"]
    assert registry.read(curve, "type_token_ratio") == curve["ttr"]
    influence = json.loads((MEASUREMENTS / "influence_text_length.json").read_text())["summary"]["base-greedy"]
    assert registry.read(influence, "type_token_ratio") == influence["ttr"]
    assert registry.read(influence, "entropy_mean") == influence["entropy"]
    vision = json.loads((MEASUREMENTS / "fashion_64img_3seeds.json").read_text())
    blob = next(iter(vision["runs"].values()))["results"]["hyperfit-greedy"]
    assert registry.read(blob, "overlap_mean_span") == blob["mean_span"]
    with pytest.raises(KeyError, match="all name 'type_token_ratio'"):
        registry.read({"ttr_tokens_last64": 0.5, "ttr_tokens_last96": 0.4}, "type_token_ratio")
    assert registry.written_keys(text) == ["overlap", "ttr_tokens_last64", "ttr_words_last64"]


def test_names_cannot_be_taken_twice():
    with pytest.raises(ValueError, match="taken"):
        registry.register(registry.Metric("ttr", "TTR", "twin", registry.HIGHER, registry.TEXT, (registry.TOKENS,)))
    with pytest.raises(ValueError, match="direction or modality"):
        registry.register(registry.Metric("x", "x", "x", "up", registry.TEXT, (registry.TOKENS,)))


def test_docs_list_every_metric():
    assert registry.markdown() in (ROOT / "docs" / "metrics.md").read_text()


def test_docs_numbers_find_a_metric_under_its_other_spelling():
    paths = runpy.run_path(str(ROOT / "scripts" / "docs_numbers_paths.py"), run_name="imported_by_test")
    new = {"runs": {"greedy": {"type_token_ratio": 0.5, "self_bleu4": 0.2}}}
    assert paths["resolve"](new, "runs/greedy/ttr_tokens_last64") == 0.5  # a doc naming an old key, a rerun's JSON
    assert paths["resolve"]({"runs": {"greedy": {"ttr": 0.5}}}, "runs/greedy/type_token_ratio") == 0.5
    with pytest.raises(paths["SpecError"], match="no key 'self_bleu3'"):
        paths["resolve"](new, "runs/greedy/self_bleu3")  # another order is another number
    with pytest.raises(paths["SpecError"], match="no key 'ttr_tokens_last96'"):
        paths["resolve"]({"ttr_tokens_last64": 0.5}, "ttr_tokens_last96")
    assert paths["resolve"]({"runs": {"g": {"overlap_max_span": 7}}}, "runs/*/overlap/max_span") == [7]  # was nested


def in_todays_keys(obj):
    """A results JSON as this version writes it: every metric under its registered key, text overlap flat."""
    if isinstance(obj, list):
        return [in_todays_keys(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for k, v in obj.items():
        found = registry.lookup(k, None)
        if k == "overlap" and isinstance(v, dict):
            out.update({registry.key(f"overlap_{part}"): v[part] for part in ("mean_span", "max_span",
                                                                              "frac_above_threshold")})
        elif found:
            out[found[0].key(**{p: found[1][p] for p in found[0].placeholders})] = in_todays_keys(v)
        else:
            out[k] = in_todays_keys(v)
    return out


def test_docs_still_check_when_every_measurement_is_rerun_with_todays_keys(tmp_path):
    """A committed JSON regenerated by this version holds the registered keys; the docs comments, written against
    the old spellings, still find every number."""
    checker = runpy.run_path(str(ROOT / "scripts" / "check_docs_numbers.py"), run_name="imported_by_test")
    for name in ("README.md", "docs", "bench", "assets/fashion-base"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("*.png", "*.safetensors"))
        else:
            shutil.copy(ROOT / name, tmp_path / name)
    renamed = 0
    for path in (tmp_path / "docs" / "measurements").rglob("*.json"):
        text = path.read_text()
        new = json.dumps(in_todays_keys(json.loads(text)))
        renamed += new != json.dumps(json.loads(text))
        path.write_text(new)
    report = checker["check"](tmp_path)
    assert renamed >= 10 and report.errors == [] and report.numbers >= 1500


# --- a plugged-in metric that needs a feature model (as MAUVE will) ----------------------------------------

def mean_feature_distance(sample, model: str) -> Scored:
    """Toy 'feature model': the mean token id of each text; the distance to its reference's."""
    assert model == "toy-features"
    feats = [sum(map(len, t.split())) for t in sample.texts]
    refs = [sum(map(len, t.split())) for t in sample.reference.texts]
    per_item = [abs(a - b) for a, b in zip(feats, refs)]
    return Scored(sum(per_item) / len(per_item), per_item)


@dataclass
class ToySettings:
    ttr_last: int = 4
    bleu_order: int = 2
    rep_n: int = 2
    overlap_threshold: int = 3
    feature_model: str | None = None


@pytest.fixture
def toy_metric():
    metric = registry.register(registry.Metric(
        "toy_feature_distance", "toy distance", "length distance to the reference in a toy feature space",
        registry.LOWER, registry.TEXT, (registry.TEXTS, registry.REFERENCE, registry.FEATURES), per_item=True,
        compute=f"{__name__}:mean_feature_distance", settings=(("model", "feature_model"),),
        enabled_by="feature_model"))
    yield metric
    del registry.REGISTRY[metric.name]


def test_a_feature_metric_is_one_entry_plus_its_function(toy_metric):
    from hyperfit_core.scoring import Sample

    generated = torch.tensor([[1, 2, 3, 4], [1, 1, 1, 1], [4, 3, 2, 1]])
    texts, references = ["a bb", "ccc", "d"], ["a b", "ccc", "dddd"]
    reference = Sample(tokens=generated, texts=references)
    unnamed = score_text(generated, ToySettings(), texts=texts, reference=reference)
    assert "toy_feature_distance" not in unnamed.values  # no feature model named: not run
    scores = score_text(generated, ToySettings(feature_model="toy-features"), texts=texts, reference=reference)
    assert scores.per_item["toy_feature_distance"] == [1, 0, 3] and scores.values["toy_feature_distance"] == 4 / 3
    assert scores.values["type_token_ratio"] == unnamed.values["type_token_ratio"]
    without_reference = score_text(generated, ToySettings(feature_model="toy-features"), texts=texts)
    assert "toy_feature_distance" not in without_reference.values  # the sample lacks what it needs
