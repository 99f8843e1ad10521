import json
import runpy
import sys
from pathlib import Path

import pytest
import torch

from hyperfit_core import metric_registry as registry
from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences
from hyperfit_core.train import TrainConfig, hyperfit
from hyperfit_vision.benchmark import paper_conditions, results_table, run_benchmark
from hyperfit_vision.data import load_image_folder
from hyperfit_vision.model import load_imagegpt
from hyperfit_vision.tokens import images_to_tokens

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def test_benchmark_scores_every_condition_and_resumes(tiny_imagegpt_dir, image_folder_8px, tmp_path, monkeypatch):
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
    assert results["hyperfit-greedy"]["overlap_max_span"] > 8
    assert results["hyperfit-blocked"]["overlap_max_span"] <= 8
    for file in ("results.json", "results.md", "results.png", "grid.png"):
        assert (run / file).is_file()
    assert "| hyperfit-blocked |" in results_table(results)
    table = (run / "results.md").read_text()  # how many images each number rests on, and FID's caveat
    assert "4 held-out images scored per condition" in table and "FID rests on 4 < 2048 images" in table
    assert results["base-greedy"]["images"] == 4
    blocked = [r for r in run.read_metrics() if r.get("condition") == "hyperfit-blocked" and r["event"] == "completed"]
    assert blocked[0]["blocker"]["steps_with_ban"] >= blocked[0]["blocker"]["steps_top1_banned"] > 0
    # a second call finds every condition cached: no new completions are made
    completed_before = sum(r["event"] == "completed" for r in run.read_metrics())
    again = run_benchmark({"base": base, "hyperfit": fitted}, held_out, paper_conditions(), run,
                          train_tokens=train, blocker_n=8, fid=False, device="cpu")
    assert sum(r["event"] == "completed" for r in run.read_metrics()) == completed_before
    assert "FID rests on" not in (run / "results.md").read_text()  # no FID, no caveat
    assert again["hyperfit-greedy"]["overlap_max_span"] == results["hyperfit-greedy"]["overlap_max_span"]
    # ... and FID reuses the cached Inception features: same numbers without running the network
    assert (run / "real.inception.safetensors").is_file()
    import hyperfit_vision.fid as fid

    def no_network(self, images):
        raise AssertionError("Inception ran although its features were cached")

    monkeypatch.setattr(fid.InceptionFeatures, "forward", no_network)
    cached = run_benchmark({"base": base, "hyperfit": fitted}, held_out, paper_conditions(), run,
                           train_tokens=train, blocker_n=8, fid=True, device="cpu")
    for name in ("base-greedy", "hyperfit-blocked"):
        assert cached[name]["fid"] == results[name]["fid"]
    # --device reaches the Inception network too: on a machine with CUDA, device="cpu" keeps it on the CPU
    with monkeypatch.context() as cuda_present:
        cuda_present.setattr(torch.cuda, "is_available", lambda: True)
        on_cpu = run_benchmark({"base": base, "hyperfit": fitted}, held_out, paper_conditions(), run,
                               train_tokens=train, blocker_n=8, fid=True, device="cpu")
    assert on_cpu["base-greedy"]["fid"] == results["base-greedy"]["fid"]
    written = json.loads((run / "results.json").read_text())
    assert written["real"]["repetition"]
    # every key written is a registered metric or field (hyperfit_core/metric_list.py)
    for blob in written.values():
        assert registry.written_keys(blob) == [] and registry.written_keys(blob["repetition"]) == []
    # per_item.json: one value per held-out image and side, whose mean is the condition's number
    per_item = json.loads((run / "per_item.json").read_text())
    greedy = per_item["hyperfit-greedy"]["generated"]
    assert len(greedy["seq_rep_4"]) == 4 and len(greedy["overlap_mean_span"]) == 4
    mean = written["hyperfit-greedy"]["repetition"]["seq_rep_4"]["generated"]
    assert sum(greedy["seq_rep_4"]) / 4 == pytest.approx(mean)
    # scripts/fid_from_cache.py is the same FID addition: the benchmark's numbers, from the cached features
    out = tmp_path / "fid.json"
    monkeypatch.setattr(sys, "argv", ["fid_from_cache.py", str(run.path), "hyperfit-greedy", "base-top-p",
                                      "--out", str(out)])
    runpy.run_path(str(SCRIPTS / "fid_from_cache.py"), run_name="__main__")
    scored = json.loads(out.read_text())["results"]
    for name in ("hyperfit-greedy", "base-top-p"):
        assert {k: scored[name][k] for k in ("fid", "kid_mean", "kid_std")} == \
            {k: cached[name][k] for k in ("fid", "kid_mean", "kid_std")}


def test_inception_features_are_cached_and_invalidated_by_other_pixels(tmp_path, monkeypatch):
    from hyperfit_vision import scoring

    calls = []

    class FakeExtractor:
        weights_path = "fake-weights"

        def __call__(self, images):
            calls.append(len(images))
            return images.reshape(len(images), -1).double()[:, :5] / 255

    images = torch.randint(0, 256, (4, 8, 8, 3), dtype=torch.uint8)
    cache = tmp_path / "x.inception.safetensors"
    first = scoring.cached_features(FakeExtractor(), images, cache)
    again = scoring.cached_features(FakeExtractor(), images, cache)
    assert calls == [4] and torch.equal(first, again) and again.dtype == torch.float64
    changed = images.clone()
    changed[0, 0, 0, 0] ^= 1
    scoring.cached_features(FakeExtractor(), changed, cache)
    assert calls == [4, 4]  # one pixel differs: recomputed, not served stale
    other = FakeExtractor()
    other.weights_path = "other-weights"
    scoring.cached_features(other, changed, cache)
    assert calls == [4, 4, 4]  # other Inception weights: recomputed
    assert [p.name for p in tmp_path.iterdir()] == ["x.inception.safetensors"]  # no temp files left
