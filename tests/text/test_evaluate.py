import pytest
import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_core.scoring import Sample
from hyperfit_text.evaluate import EvalSettings, diversity_metrics, markdown_table
from hyperfit_text.model import _check_source
from hyperfit_text.scoring import word_type_token_ratio


def word_ttr(texts, last):
    return word_type_token_ratio(Sample(texts=texts), last)


def test_word_ttr_uses_the_last_words_and_skips_empty_texts():
    scored = word_ttr(["a b a b", "   ", "x y z"], last=2)
    assert scored.per_item == [1.0, None, 1.0] and scored.value == pytest.approx((1.0 + 1.0) / 2)
    assert word_ttr(["a a a b"], last=4).value == pytest.approx(0.5)
    assert word_ttr(["", " "], last=4).value is None


def test_diversity_metrics_on_repetitive_vs_diverse_generations():
    train = torch.arange(100).reshape(4, 25)
    repetitive = torch.tensor([[7, 8] * 20, [7, 8] * 20])
    diverse = torch.stack([torch.arange(0, 40), torch.arange(50, 90)])
    settings = EvalSettings(ttr_last=16)
    rep, rep_items = diversity_metrics(repetitive, train, settings, None)
    div, div_items = diversity_metrics(diverse, train, settings, None)
    assert rep["type_token_ratio"] == pytest.approx(2 / 16) and div["type_token_ratio"] == 1.0
    assert rep["self_bleu4"] == pytest.approx(1.0) and div["self_bleu4"] < 0.1
    assert rep["seq_rep_4"] > 0.9 and div["seq_rep_4"] == 0.0
    # 0..24 is a whole training window, so the first diverse generation copies 25 tokens
    assert div["overlap_max_span"] == 25 and rep["overlap_max_span"] == 2
    assert div_items["overlap_mean_span"] == [25, 25] and rep_items["type_token_ratio"] == [2 / 16, 2 / 16]
    with pytest.raises(HyperfitError, match="at least two generations"):
        diversity_metrics(diverse[:1], train, settings, None)


def test_markdown_table_has_one_row_per_run_and_the_human_row():
    settings = EvalSettings()
    entry = {"model": "runs/20260101-text-train/model", "count": 7, "type_token_ratio": 0.5, "self_bleu4": 0.2,
             "dataset_bleu4": 0.1, "seq_rep_4": 0.0, "overlap_mean_span": 3.0, "overlap_max_span": 5,
             "analysis": {"perplexity": 12.0, "entropy_mean": 0.1, "top1_prob_mean": 0.9}}
    human = {**entry, "model": "human reference"}
    del human["analysis"]
    lines = markdown_table({"greedy": entry}, human, settings).splitlines()
    assert "7 continuations scored per run" in lines[-1]
    lines = [line for line in lines if line.startswith("|")]
    assert len(lines) == 4 and "| greedy | 20260101-text-train | 0.500 |" in lines[2]
    assert lines[3].startswith("| human reference |") and lines[3].count(" - ") >= 3


@pytest.mark.parametrize("name", ["Qwen/Qwen2.5-0.5B", "meta-llama/Llama-3.1-8B", "gpt2"])
def test_hub_ids_with_dots_are_not_taken_for_missing_folders(name):
    _check_source(name)  # no error: left to from_pretrained


@pytest.mark.parametrize("name", ["./nope", "/tmp/does/not/exist", "a/b/c"])
def test_missing_local_folders_are_reported(name):
    with pytest.raises(HyperfitError, match="model folder not found"):
        _check_source(name)
