"""`hyperfit vision evaluate`: completions of separate runs scored side by side, exactly as `vision benchmark`
scores its own, and every way of mixing incomparable inputs refused before anything is written."""

import json
from pathlib import Path

import pytest

from hyperfit_core.cli import main
from tests.cli_outcome import assert_outcome, ok_run, run_dirs


@pytest.fixture(scope="module")
def runs(tiny_imagegpt_dir, image_folder_8px, tmp_path_factory):
    """Two hyperfitting runs on different images, a benchmark (with FID) of the first, and greedy `complete` runs
    of the base and of each hyperfitted model on the benchmark's 4 images (and one on 3 images)."""
    root = tmp_path_factory.mktemp("vision-evaluate")
    data = ["--data", str(image_folder_8px), "--device", "cpu"]

    def run(args, out):
        main([*args, *data, "--out", str(root / out)])
        (path,) = run_dirs(root / out)
        return path

    out = {}
    for name, seed in (("fit", "0"), ("other", "1")):
        out[name] = run(["vision", "train", "--model", str(tiny_imagegpt_dir), "--num-train", "4", "--epochs", "8",
                         "--lr", "1e-2", "--batch-size", "4", "--seed", seed, "--data-seed", seed], name)
    out["bench"] = run(["vision", "benchmark", "--base", str(tiny_imagegpt_dir), "--hyperfit",
                        str(out["fit"] / "model"), "--num-eval", "4", "--blocker-n", "8"], "bench")
    for name, model, count in (("base", tiny_imagegpt_dir, "4"), ("fit-greedy", out["fit"] / "model", "4"),
                               ("other-greedy", out["other"] / "model", "4"), ("base3", tiny_imagegpt_dir, "3")):
        out[name] = run(["vision", "complete", "--model", str(model), "--num-eval", count], name)
    return out


def _listing(folder: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_evaluating_a_benchmark_run_gives_its_numbers_without_running_inception(runs, tmp_path, capsys,
                                                                               monkeypatch):
    import hyperfit_vision.fid as fid

    def no_network(self, images):
        raise AssertionError("Inception ran although the benchmark's features were there to copy")

    monkeypatch.setattr(fid.InceptionFeatures, "forward", no_network)
    before = _listing(runs["bench"])
    run = ok_run(["vision", "evaluate", str(runs["bench"]), "--device", "cpu", "--out", str(tmp_path)], capsys)
    assert json.loads((run / "results.json").read_text()) == json.loads((runs["bench"] / "results.json").read_text())
    assert _listing(runs["bench"]) == before  # the input run is only read
    assert "KID's ± is 0: its subsets hold min(1000, 4) images" in (run / "results.md").read_text()
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["overlap"] is True and set(config["completions"]) == {"base-greedy", "base-top-p",
                                                                         "hyperfit-greedy", "hyperfit-blocked"}
    for file in ("results.md", "results.png", "per_item.json", "grid.png", "hyperfit-greedy.completions.safetensors"):
        assert (run / file).is_file()


def test_complete_runs_scored_side_by_side_as_the_benchmark_scores_them(runs, tmp_path, capsys):
    run = ok_run(["vision", "evaluate", f"base-greedy={runs['base']}", f"hyperfit-greedy={runs['fit-greedy']}",
                  "--no-fid", "--out", str(tmp_path)], capsys)
    results = json.loads((run / "results.json").read_text())
    bench = json.loads((runs["bench"] / "results.json").read_text())
    assert set(results) == {"base-greedy", "hyperfit-greedy", "real"}
    for name in ("base-greedy", "hyperfit-greedy"):  # greedy is deterministic: the benchmark's own completions
        expected = {k: v for k, v in bench[name].items() if k not in ("fid", "kid_mean", "kid_std", "n_real", "n_fake",
                                                                      "kid_subset_size", "kid_subsets")}
        assert results[name] == expected
    # the overlap is measured against the data the hyperfitted model came from, found without --train-run
    assert results["hyperfit-greedy"]["overlap_max_span"] == bench["hyperfit-greedy"]["overlap_max_span"]
    assert "FID" not in (run / "results.md").read_text().splitlines()[0]


def test_base_runs_alone_are_scored_without_overlap_and_say_so(runs, tmp_path, capsys):
    capsys.readouterr()
    main(["vision", "evaluate", str(runs["base"]), "--no-fid", "--out", str(tmp_path)])
    assert "overlap with the hyperfitting data not scored" in capsys.readouterr().err
    (run,) = run_dirs(tmp_path)
    assert "overlap_max_span" not in json.loads((run / "results.json").read_text())["greedy"]


@pytest.mark.parametrize("case", ["same-name", "other-images", "name-of-many", "not-completions",
                                  "different-data"])
def test_incomparable_inputs_are_refused_before_anything_is_written(runs, case, tmp_path, capsys):
    inputs = {
        "same-name": [str(runs["base"]), str(runs["fit-greedy"])],  # both "greedy"
        "other-images": [f"a={runs['base']}", f"b={runs['base3']}"],
        "name-of-many": [f"all={runs['bench']}"],
        "not-completions": [str(runs["fit"] / "model")],
        "different-data": [f"a={runs['fit-greedy']}", f"b={runs['other-greedy']}"],
    }[case]
    assert_outcome(["vision", "evaluate", *inputs, "--no-fid"], False, tmp_path / "runs", capsys)


def test_train_run_settles_whose_data_the_overlap_is_measured_against(runs, tmp_path, capsys):
    run = ok_run(["vision", "evaluate", f"a={runs['fit-greedy']}", f"b={runs['other-greedy']}", "--train-run",
                  str(runs["other"]), "--no-fid", "--out", str(tmp_path)], capsys)
    results = json.loads((run / "results.json").read_text())
    assert "overlap_max_span" in results["a"] and "overlap_max_span" in results["b"]


@pytest.mark.parametrize("command", ["evaluate", "benchmark"])
def test_missing_inception_weights_are_refused_before_a_run_dir_is_made(runs, tiny_imagegpt_dir, image_folder_8px,
                                                                        command, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HYPERFIT_INCEPTION", str(tmp_path / "missing.pt"))
    args = {"evaluate": ["vision", "evaluate", str(runs["bench"])],
            "benchmark": ["vision", "benchmark", "--base", str(tiny_imagegpt_dir), "--hyperfit",
                          str(runs["fit"] / "model"), "--data", str(image_folder_8px), "--num-eval", "2"]}[command]
    assert_outcome([*args, "--device", "cpu"], False, tmp_path / "runs", capsys)
