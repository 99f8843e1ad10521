"""MAUVE and fluency inside `hyperfit text evaluate` (issue 26): a tiny scoring model named with --quality-model
writes the registered keys, the values are those of the quality modules on the texts a person reads, a second
evaluation reads the per-text caches back, and a named model that is not there is one error line."""

import json

import numpy as np
import pytest

from hyperfit_core import metric_registry as registry
from hyperfit_core.cli import main
from hyperfit_core.formats import GENERATION_TEXTS, condition_name, read_jsonl
from hyperfit_text.fluency import fluency
from hyperfit_text.mauve_score import mauve_score
from hyperfit_text.quality import choose_quality_model, load_quality_model, scored_texts
from hyperfit_text.text_features import text_features

from .test_cli import SMALL, fails, run_cli


@pytest.fixture(scope="module")
def two_conditions(tiny_llama_dir, corpus_txt, tmp_path_factory):
    """A hyperfitted tiny Llama's greedy continuations and the base model's top-p ones, on the same 6 prompts."""
    out = tmp_path_factory.mktemp("quality-runs")
    main(["text", "train", "--model", str(tiny_llama_dir), "--data", str(corpus_txt), *SMALL, "--epochs", "2",
          "--lr", "3e-3", "--out", str(out)])
    (train,) = out.glob("*-text-train")
    runs = []
    for args in (["--model", str(train / "model")],
                 ["--model", str(tiny_llama_dir), "--train-run", str(train), "--decoding", "top-p"]):
        before = set(out.iterdir())
        main(["text", "generate", *args, "--max-new-tokens", "24", "--out", str(out)])
        (run,) = set(out.iterdir()) - before
        runs.append(run)
    return runs


def test_evaluate_with_a_named_scoring_model_writes_mauve_and_fluency(two_conditions, tiny_gpt2_text_dir, tmp_path,
                                                                      capsys, monkeypatch):
    out = tmp_path / "runs"
    args = ["text", "evaluate", *map(str, two_conditions), "--no-analysis", "--quality-model",
            str(tiny_gpt2_text_dir), "--out", str(out)]
    evaluation = run_cli(args, capsys)
    results = json.loads((evaluation / "results.json").read_text())
    per_item = json.loads((evaluation / "per_item.json").read_text())
    assert set(results["runs"]) == {"greedy", "sample-T0.7-k50-p0.9"}
    assert results["quality"]["computed"] and results["quality"]["model"] == str(tiny_gpt2_text_dir)
    scorer = load_quality_model(str(tiny_gpt2_text_dir))
    for run in two_conditions:
        (texts_file,) = run.glob("*.generations.jsonl")
        rows, name = read_jsonl(texts_file), condition_name(texts_file, GENERATION_TEXTS)
        entry = results["runs"][name]
        assert registry.written_keys(entry) == []
        # MAUVE is mauve-text's number on the scoring model's features of the texts a person reads
        direct = mauve_score(text_features(scorer, scored_texts(rows, "continuation")),
                             text_features(scorer, scored_texts(rows, "reference")))
        assert entry["mauve"] == pytest.approx(direct["mauve"], abs=1e-6)
        assert (entry["mauve_texts"], entry["mauve_human_texts"], entry["mauve_clusters"]) == (6, 6, 2)
        assert 0.0 < entry["mauve"] <= 1.0 and entry["mauve_frontier_integral"] >= 0.0
        # fluency: each continuation's perplexity given its context, per prompt in per_item.json
        expected = fluency(scorer, scored_texts(rows, "context"), scored_texts(rows, "continuation"))
        items = per_item["runs"][name]["fluency_perplexity"]
        np.testing.assert_allclose(items, expected["fluency_perplexity_per_text"], rtol=1e-5)
        assert entry["fluency_perplexity"] == pytest.approx(np.mean(items), rel=1e-6)
        assert entry["fluency_texts"] == 6 and entry["fluency_tokens"] == expected["fluency_tokens"]
    # the human references' own fluency is the value to compare with; MAUVE of the references with themselves
    # is not reported
    human = results["human_reference"]
    assert human["fluency_perplexity"] > 1.0 and "mauve" not in human
    assert len(per_item["human_reference"]["fluency_perplexity"]) == 6
    table = (evaluation / "results.md").read_text()
    header = table.splitlines()[0]
    assert registry.label("mauve") in header and registry.label("fluency_perplexity") in header
    assert "MAUVE rests on 6 texts per condition in 2 clusters" in table and "biased upward" in table
    assert (evaluation / "quality.png").stat().st_size > 0
    assert any((out / "text-quality-cache").iterdir())

    # evaluating again reads every feature and perplexity back from the per-text caches
    def no_model(*args, **kwargs):
        raise AssertionError("the scoring model ran although every text is cached")

    monkeypatch.setattr("hyperfit_text.text_features.text_features", no_model)
    monkeypatch.setattr("hyperfit_text.fluency.continuation_nll", no_model)
    again = json.loads((run_cli(args, capsys) / "results.json").read_text())
    for name, entry in results["runs"].items():
        assert again["runs"][name]["mauve"] == entry["mauve"]
        assert again["runs"][name]["fluency_perplexity"] == entry["fluency_perplexity"]


def test_without_a_scoring_model_evaluation_runs_and_says_quality_was_not_computed(two_conditions, tmp_path,
                                                                                   capsys):
    out = tmp_path / "runs"
    capsys.readouterr()
    main(["text", "evaluate", str(two_conditions[0]), "--no-analysis", "--out", str(out)])
    captured = capsys.readouterr()
    assert "warning: MAUVE and fluency not computed: the default scoring model" in captured.err
    evaluation = next(out.glob("*-text-evaluate"))
    results = json.loads((evaluation / "results.json").read_text())
    assert results["quality"]["computed"] is False and "is not here" in results["quality"]["why"]
    assert "mauve" not in results["runs"]["greedy"] and "fluency_perplexity" not in results["runs"]["greedy"]
    assert "MAUVE and fluency not computed" in (evaluation / "results.md").read_text()
    assert not (evaluation / "quality.png").exists()
    # "none" leaves them out on purpose, without a warning
    none = run_cli(["text", "evaluate", str(two_conditions[0]), "--no-analysis", "--quality-model", "none",
                    "--out", str(out)], capsys)
    assert json.loads((none / "results.json").read_text())["quality"] == {"computed": False,
                                                                        "why": "--quality-model none"}


@pytest.mark.parametrize("missing", ["no-such-scorer", "no-such-scorer.gguf"])
def test_a_named_scoring_model_that_is_not_there_is_one_error_line_and_nothing_written(two_conditions, tmp_path,
                                                                                       capsys, missing):
    out = tmp_path / "runs"
    fails(["text", "evaluate", str(two_conditions[0]), "--quality-model", str(tmp_path / missing), "--out",
           str(out)], capsys, out, f"--quality-model {tmp_path / missing}")
    assert not out.exists()


def test_the_default_scoring_model_is_used_when_it_is_there(tmp_path, monkeypatch):
    present = tmp_path / "scorer.gguf"
    monkeypatch.setattr("hyperfit_text.scorer.DEFAULT_SCORER", str(present))
    assert choose_quality_model(None) == (None, choose_quality_model(None)[1]) and "not here" in \
        choose_quality_model(None)[1]
    present.write_bytes(b"GGUF")
    assert choose_quality_model(None) == (str(present), None)
    assert choose_quality_model("None") == (None, "--quality-model none")
    assert choose_quality_model("some/hub-id") == ("some/hub-id", None)
