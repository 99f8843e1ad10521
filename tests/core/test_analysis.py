import json
import math
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from hyperfit_core.analysis import plot_analysis, prediction_stats, summarize, top1_agreement, write_report
from hyperfit_core.errors import HyperfitError

VOCAB = 40


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=0, eos_token_id=0)
    path = tmp_path_factory.mktemp("tiny-gpt2")
    GPT2LMHeadModel(config).save_pretrained(path)
    return AutoModelForCausalLM.from_pretrained(path)


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, VOCAB, (5, 20), generator=torch.Generator().manual_seed(1))


class OneHot(torch.nn.Module):
    """Wraps a model so every prediction puts (numerically) all mass on the inner model's argmax."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids):
        logits = self.inner(input_ids=input_ids).logits
        return SimpleNamespace(logits=torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]) * 1e4)


class FewerLogits(torch.nn.Module):
    """Like ImageGPT, whose SOS token is an input id without a logit: only the first `classes` logits."""

    def __init__(self, inner, classes):
        super().__init__()
        self.inner, self.classes = inner, classes

    def forward(self, input_ids):
        return SimpleNamespace(logits=self.inner(input_ids=input_ids).logits[..., :self.classes])


def test_fewer_logits_than_ids(model):
    ids = torch.tensor([[VOCAB - 1, 1, 2, 3, 4, 5]])   # the "SOS" id only appears in the context
    stats = prediction_stats(FewerLogits(model, VOCAB - 1), ids, 1)
    assert stats["num_classes"] == VOCAB - 1
    assert stats["entropy"].shape == (1, 5)
    assert bool((stats["entropy"] <= math.log(VOCAB - 1) + 1e-5).all())


def test_stats_match_a_direct_computation(model, ids):
    context = 8
    stats = prediction_stats(model, ids, context, batch_size=2)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, context - 1:-1].double()
    probs = logits.softmax(-1)
    target = ids[:, context:]
    assert stats["entropy"].shape == target.shape
    assert stats["num_classes"] == VOCAB
    torch.testing.assert_close(stats["entropy"].double(), -(probs * probs.log()).sum(-1), atol=1e-5, rtol=0)
    sorted_probs = probs.sort(-1, descending=True).values
    for k in (1, 3, 5):
        torch.testing.assert_close(stats[f"top{k}_prob"].double(), sorted_probs[..., :k].sum(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(stats["cross_entropy"].double(),
                               -probs.log().gather(-1, target[..., None]).squeeze(-1), atol=1e-5, rtol=0)
    assert torch.equal(stats["top1_correct"], probs.argmax(-1) == target)


def test_summary_perplexity_and_histogram(model, ids):
    stats = prediction_stats(model, ids, 4)
    summary = summarize(stats, bins=10)
    assert summary["positions"] == ids.shape[0] * (ids.shape[1] - 4)
    assert summary["perplexity"] == pytest.approx(math.exp(stats["cross_entropy"].double().mean()))
    assert summary["cross_entropy_mean"] == pytest.approx(float(stats["cross_entropy"].double().mean()))
    assert summary["entropy_median"] == pytest.approx(float(stats["entropy"].double().median()))
    assert summary["top1_accuracy"] == pytest.approx(float(stats["top1_correct"].double().mean()))
    assert sum(summary["entropy_hist"]["counts"]) == summary["positions"]
    assert summary["entropy_hist"]["edges"][-1] == pytest.approx(math.log(VOCAB))
    assert summary["top1_prob_mean"] <= summary["top3_prob_mean"] <= summary["top5_prob_mean"] <= 1 + 1e-6
    # an untrained model is near uniform: entropy close to the maximum ln(40)
    assert summary["entropy_mean"] > 0.9 * math.log(VOCAB)


def test_one_hot_model_is_fully_sharpened(model, ids):
    summary = summarize(prediction_stats(OneHot(model), ids, 5))
    assert summary["entropy_mean"] < 1e-4
    assert summary["top1_prob_mean"] == pytest.approx(1.0, abs=1e-5)


def test_top1_agreement(model, ids):
    assert top1_agreement(model, model, ids, 3) == 1.0
    assert top1_agreement(model, OneHot(model), ids, 3) == 1.0   # same argmax, different sharpness
    torch.manual_seed(5)
    other = GPT2LMHeadModel(model.config)
    assert 0.0 <= top1_agreement(model, other, ids, 3) < 1.0


def test_bad_input_raises(model, ids):
    with pytest.raises(HyperfitError):
        prediction_stats(model, ids, 0)
    with pytest.raises(HyperfitError):
        prediction_stats(model, ids, ids.shape[1])
    with pytest.raises(HyperfitError):
        prediction_stats(model, ids.float(), 3)
    with pytest.raises(HyperfitError):   # a true token the model has no logit for
        prediction_stats(FewerLogits(model, VOCAB - 5), torch.full((1, 6), VOCAB - 2), 2)
    assert not model.training


def test_plot_and_report(model, ids, tmp_path):
    stats = prediction_stats(model, ids, 6)
    sharp = prediction_stats(OneHot(model), ids, 6)
    summaries = {"base": (stats, summarize(stats)), "hyperfitted": (sharp, summarize(sharp))}
    png = tmp_path / "analysis.png"
    plot_analysis(summaries, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["analysis.png"]   # no temp file left behind
    report = tmp_path / "analysis.json"
    write_report(summaries, report)
    data = json.loads(report.read_text())
    assert set(data) == {"base", "hyperfitted"}
    assert data["hyperfitted"]["entropy_mean"] < data["base"]["entropy_mean"]


def test_training_flags_are_restored_module_by_module(model, ids):
    wrapper = OneHot(model)          # a fresh nn.Module is in training mode, its inner model is not
    prediction_stats(wrapper, ids, 3)
    assert wrapper.training and not model.training


class Masked(torch.nn.Module):
    """Forbids half the vocabulary with -inf logits, as a blocker or a constrained head would."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids):
        logits = self.inner(input_ids=input_ids).logits.clone()
        logits[..., VOCAB // 2:] = -math.inf
        return SimpleNamespace(logits=logits)


def test_masked_logits_give_finite_entropy(model):
    ids = torch.randint(0, VOCAB // 2, (2, 10), generator=torch.Generator().manual_seed(2))
    stats = prediction_stats(Masked(model), ids, 3)
    assert bool(torch.isfinite(stats["entropy"]).all())
    assert bool((stats["entropy"] <= math.log(VOCAB // 2) + 1e-5).all())
