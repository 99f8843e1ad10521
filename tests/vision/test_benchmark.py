import json

import torch

from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences
from hyperfit_core.train import TrainConfig, hyperfit
from hyperfit_vision.benchmark import paper_conditions, results_table, run_benchmark
from hyperfit_vision.data import load_image_folder
from hyperfit_vision.model import load_imagegpt
from hyperfit_vision.tokens import images_to_tokens


def test_benchmark_scores_every_condition_and_resumes(tiny_imagegpt_dir, image_folder_8px, tmp_path):
    images = load_image_folder(image_folder_8px)
    base, _ = load_imagegpt(str(tiny_imagegpt_dir))
    fitted, _ = load_imagegpt(str(tiny_imagegpt_dir))
    train = TokenSequences(images_to_tokens(images.images[:6], base.palette, sos=base.sos), torch.arange(6))
    hyperfit(fitted.model, train, TrainConfig(lr=1e-2, epochs=30, batch_size=6, progress=False), RunDir(tmp_path / "t"))
    held_out = images.subset(torch.arange(4))  # hyperfitting images: a recited image must show as overlap
    run = RunDir(tmp_path / "bench")
    results = run_benchmark({"base": base, "hyperfit": fitted}, held_out, paper_conditions(), run,
                            train_tokens=train, prefix_fraction=0.25, blocker_n=8, fid=True, device="cpu")
    assert set(results) == {"base-greedy", "base-top-p", "hyperfit-greedy", "hyperfit-blocked", "real"}
    for name in ("base-greedy", "hyperfit-greedy"):
        assert results[name]["fid"] >= 0 and "kid_mean" in results[name]
        assert 0 <= results[name]["repetition"]["seq_rep_4"]["generated"] <= 1
    # the hyperfitted model recites its training images; the blocker stops runs longer than n = 8 pixels
    assert results["hyperfit-greedy"]["max_span"] > 8
    assert results["hyperfit-blocked"]["max_span"] <= 8
    for file in ("results.json", "results.md", "results.png", "grid.png"):
        assert (run / file).is_file()
    assert "| hyperfit-blocked |" in results_table(results)
    blocked = [r for r in run.read_metrics() if r.get("condition") == "hyperfit-blocked" and r["event"] == "completed"]
    assert blocked[0]["blocker"]["fired"] > 0
    # a second call finds every condition cached: no new completions are made
    completed_before = sum(r["event"] == "completed" for r in run.read_metrics())
    again = run_benchmark({"base": base, "hyperfit": fitted}, held_out, paper_conditions(), run,
                          train_tokens=train, blocker_n=8, fid=False, device="cpu")
    assert sum(r["event"] == "completed" for r in run.read_metrics()) == completed_before
    assert again["hyperfit-greedy"]["max_span"] == results["hyperfit-greedy"]["max_span"]
    assert json.loads((run / "results.json").read_text())["real"]["repetition"]
