"""hyperfit_core.influence: mean/sd over seeds, pairwise top-1 agreement, epochs for a step budget, the plots."""

import math

import pytest
import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_core.influence import aggregate, epochs_for_steps, mean_sd, pairwise_agreement, plot_matrix, plot_series


def test_mean_sd_is_the_sample_sd_and_skips_missing_values():
    result = mean_sd([1.0, 2.0, None, float("nan"), 3.0])
    assert result["mean"] == 2.0 and result["sd"] == pytest.approx(1.0) and result["n"] == 3
    assert result["values"] == [1.0, 2.0, 3.0]
    assert mean_sd([5.0]) == {"mean": 5.0, "sd": None, "n": 1, "values": [5.0]}
    assert mean_sd([None])["mean"] is None


def test_aggregate_takes_each_key_over_the_records():
    summary = aggregate([{"ttr": 0.5, "rep": 0.1}, {"ttr": 0.7}], ["ttr", "rep"])
    assert summary["ttr"]["mean"] == pytest.approx(0.6) and summary["ttr"]["sd"] == pytest.approx(math.sqrt(0.02))
    assert summary["rep"]["n"] == 1


def test_pairwise_agreement_counts_equal_top1_positions():
    a = torch.tensor([[1, 2, 3, 4]])
    b = torch.tensor([[1, 2, 0, 0]])
    c = torch.tensor([[1, 2, 3, 4]])
    pairs = pairwise_agreement({"a": a, "b": b, "c": c})
    assert [(p["a"], p["b"]) for p in pairs] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert [p["agreement"] for p in pairs] == [0.5, 1.0, 0.5]
    with pytest.raises(HyperfitError, match="at least two"):
        pairwise_agreement({"a": a})
    with pytest.raises(HyperfitError, match="different positions"):
        pairwise_agreement({"a": a, "b": torch.tensor([[1, 2]])})


@pytest.mark.parametrize("items,batch,steps,epochs", [(8, 8, 100, 100), (16, 8, 100, 50), (2000, 8, 100, 1),
                                                      (9, 8, 3, 2), (64, 8, 480, 60)])
def test_epochs_for_steps_hold_the_step_budget(items, batch, steps, epochs):
    assert epochs_for_steps(items, batch, steps) == epochs
    assert epochs * math.ceil(items / batch) >= steps


def test_epochs_for_steps_rejects_nonpositive_inputs():
    with pytest.raises(HyperfitError):
        epochs_for_steps(0, 8, 10)


def test_plots_write_png(tmp_path):
    point = {"mean": 0.5, "sd": 0.1, "n": 2, "values": [0.4, 0.6]}
    plot_series({"ttr": {"text": {8: point, 16: point}}}, tmp_path / "s.png", "N", logx=True, title="t")
    plot_matrix({"ttr": [[0.1, 0.2], [0.3, None]]}, ["a", "b"], ["a", "b"], tmp_path / "m.png")
    for name in ("s.png", "m.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
