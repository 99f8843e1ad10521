"""Every evaluation command under two CPU processes (gloo) against the same command in one process: the same
command line, only the launcher differs (vision evaluate scores the one-process benchmark run in both). Counts of 5
do not divide by 2 (parts of 3 and 2): every item exactly once, in order; greedy tokens identical, metrics within
float tolerance; one run dir, written once. The quality
metrics' scoring model (MAUVE features, fluency perplexities) and the benchmark's Inception network (FID / KID)
score each text or image once over the processes."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from hyperfit_core.cli import main
from hyperfit_core.formats import FEATURES, read_jsonl
from tests.distributed.common import run_launcher
from hyperfit_text.mauve_score import mauve_score
from hyperfit_text.quality import CACHE_FOLDER, scored_texts
from hyperfit_text.text_cache import text_key
from tests.text.conftest import corpus_txt, tiny_gpt2_text_dir, tiny_llama_dir  # noqa: F401  (fixtures)
from tests.vision.conftest import image_folder_8px, tiny_imagegpt_dir  # noqa: F401  (fixtures)

COUNT = "5"  # items per command: not a multiple of the 2 processes
TOL = 1e-5


def _commands(text_run: Path, vision_run: Path, llama: Path, imagegpt: Path, images: Path, generated: Path,
              scorer: Path) -> dict[str, list[str]]:
    """The command lines, each writing under out/NAME."""
    common = ["--device", "cpu"]
    return {
        "generate": ["text", "generate", "--model", str(text_run / "model"), "--num-eval", COUNT, "--max-new-tokens",
                     "12", "--blocker", "--blocker-n", "2", "--batch-size", "2", *common],
        # no scoring model here whatever the checkout holds (a module fixture runs before the autouse one that
        # hides data/'s default scorer); evaluate-quality names a tiny one
        "evaluate": ["text", "evaluate", str(generated), "--batch-size", "2", "--quality-model", "none", *common],
        "evaluate-quality": ["text", "evaluate", str(generated), "--no-analysis", "--quality-model", str(scorer),
                             *common],
        "analyze": ["text", "analyze", "--model", f"base={llama}", "--model", f"fit={text_run / 'model'}",
                    "--train-run", str(text_run), "--num-eval", COUNT, "--batch-size", "2", *common],
        "complete": ["vision", "complete", "--model", str(vision_run / "model"), "--data", str(images),
                     "--num-eval", COUNT, "--blocker", "--batch-size", "2", *common],
        # with FID / KID on the real Inception weights (as tests/vision/test_benchmark.py: CI caches them)
        "benchmark": ["vision", "benchmark", "--base", str(imagegpt), "--hyperfit", str(vision_run / "model"),
                      "--data", str(images), "--num-eval", COUNT, "--batch-size", "2", *common],
        "vision-analyze": ["vision", "analyze", "--model", f"base={imagegpt}", "--model",
                           f"fit={vision_run / 'model'}", "--data", str(images), "--num-eval", COUNT,
                           "--batch-size", "2", *common],
    }


def _with_out(argv: list[str], out: Path) -> list[str]:
    return [*argv, "--out", str(out)]


def _run_dir(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir() and p.name != CACHE_FOLDER]
    return run


@pytest.fixture(scope="module")
def eval_runs(tiny_llama_dir, corpus_txt, tiny_imagegpt_dir, image_folder_8px, tiny_gpt2_text_dir,  # noqa: F811
              tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-processes")
    main(["text", "train", "--model", str(tiny_llama_dir), "--data", str(corpus_txt), "--num-train", "8",
          "--window", "48", "--num-eval", "6", "--context", "16", "--reference", "16", "--epochs", "2",
          "--lr", "3e-3", "--out", str(root / "text-train")])
    main(["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px), "--num-train", "4",
          "--epochs", "1", "--lr", "1e-3", "--out", str(root / "vision-train")])
    text_run, vision_run = _run_dir(root / "text-train"), _run_dir(root / "vision-train")
    one, two = root / "one", root / "two"
    main(_with_out(_commands(text_run, vision_run, tiny_llama_dir, tiny_imagegpt_dir, image_folder_8px, Path(),
                             tiny_gpt2_text_dir)["generate"], one / "generate"))
    generated = _run_dir(one / "generate")  # both evaluate the same generations
    commands = _commands(text_run, vision_run, tiny_llama_dir, tiny_imagegpt_dir, image_folder_8px, generated,
                         tiny_gpt2_text_dir)
    for name, argv in commands.items():
        if name != "generate":
            main(_with_out(argv, one / name))
    # vision evaluate scores the one-process benchmark's completions (its Inception features copied, not rerun)
    commands["vision-evaluate"] = ["vision", "evaluate", str(_run_dir(one / "benchmark")), "--device", "cpu"]
    main(_with_out(commands["vision-evaluate"], one / "vision-evaluate"))
    spec = root / "spec.json"
    spec.write_text(json.dumps({"out": str(root), "record_scored": True, "commands": [_with_out(argv, two / name)
                                                               for name, argv in commands.items()]}))
    run_launcher(2, "eval_worker.py", spec, root, timeout=400, clean=lambda: shutil.rmtree(two, ignore_errors=True))
    return {name: (_run_dir(one / name), _run_dir(two / name)) for name in commands}


def _close(a, b, path=""):
    """Equal structure; numbers within TOL (relative for large ones); everything else equal."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _close(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)):
        assert b == pytest.approx(a, rel=TOL, abs=TOL, nan_ok=True), path
    else:
        assert a == b, path


def _config(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())["config"]


def test_generate_two_processes_same_tokens_and_one_run(eval_runs):
    one, two = eval_runs["generate"]
    a, b = load_file(str(one / "greedy-blocked2.generations.safetensors")), \
        load_file(str(two / "greedy-blocked2.generations.safetensors"))
    assert a["generated"].shape == (5, 12)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    texts = "greedy-blocked2.generations.jsonl"
    assert read_jsonl(one / texts) == read_jsonl(two / texts)
    logged = [r for r in read_jsonl(two / "metrics.jsonl") if r["event"] == "generated"]
    assert len(logged) == 1  # written once, by the main process
    blocker_one = [r for r in read_jsonl(one / "metrics.jsonl") if r["event"] == "generated"][0]["blocker"]
    assert logged[0]["blocker"] == blocker_one  # the blocker's counts summed over the processes
    assert _config(two)["processes"] == 2 and _config(one)["processes"] == 1
    assert len(list(two.parent.iterdir())) == 1  # one run dir for both processes


def test_evaluate_two_processes_same_metrics(eval_runs):
    one, two = eval_runs["evaluate"]
    a, b = (json.loads((run / "results.json").read_text()) for run in (one, two))
    for entry in (a, b):
        assert entry["runs"]["greedy-blocked2"]["analysis"]["positions"] == 5 * 16
    _close(a["runs"], b["runs"])
    _close(json.loads((one / "analysis.json").read_text()), json.loads((two / "analysis.json").read_text()))


@pytest.mark.parametrize("name", ["analyze", "vision-analyze"])
def test_analyze_two_processes_same_statistics(eval_runs, name):
    one, two = eval_runs[name]
    a = json.loads((one / "analysis.json").read_text())
    assert set(a) == {"base", "fit"}
    _close(a, json.loads((two / "analysis.json").read_text()))
    _close(json.loads((one / "agreement.json").read_text()), json.loads((two / "agreement.json").read_text()))


def test_complete_two_processes_same_images(eval_runs):
    one, two = eval_runs["complete"]
    a, b = (load_file(str(run / "greedy-blocked.completions.safetensors")) for run in (one, two))
    assert a["tokens"].shape[0] == 5
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert (two / "grid.png").is_file()
    logged = [r for r in read_jsonl(two / "metrics.jsonl") if r["event"] == "completed"]
    assert len(logged) == 1 and logged[0]["blocker"] == \
        [r for r in read_jsonl(one / "metrics.jsonl") if r["event"] == "completed"][0]["blocker"]


def test_benchmark_two_processes_same_results(eval_runs):
    one, two = eval_runs["benchmark"]
    for condition in ("base-greedy", "hyperfit-greedy", "hyperfit-blocked", "base-top-p"):
        a, b = (load_file(str(run / f"{condition}.completions.safetensors")) for run in (one, two))
        if condition != "base-top-p":  # sampling draws per process (seeded): only greedy tokens must agree
            assert torch.equal(a["tokens"], b["tokens"]), condition
        assert torch.equal(a["source_index"], b["source_index"])
    a, b = (json.loads((run / "results.json").read_text()) for run in (one, two))
    a.pop("base-top-p"), b.pop("base-top-p")
    _close(a, b)


def test_vision_evaluate_two_processes_same_results_as_one_and_as_the_benchmark(eval_runs):
    one, two = eval_runs["vision-evaluate"]
    a, b = (json.loads((run / "results.json").read_text()) for run in (one, two))
    _close(a, b)
    _close(json.loads((eval_runs["benchmark"][0] / "results.json").read_text()), a)
    assert json.loads((two / "config.json").read_text())["config"]["processes"] == 2


def _inception_features(path: Path) -> tuple[torch.Tensor, str]:
    with safe_open(str(path), framework="pt") as f:
        return f.get_tensor("features"), f.metadata()["key"]


def test_benchmark_two_processes_same_fid_kid_and_features(eval_runs):
    one, two = eval_runs["benchmark"]
    a, b = (json.loads((run / "results.json").read_text()) for run in (one, two))
    greedy = ("base-greedy", "hyperfit-greedy", "hyperfit-blocked")  # top-p samples per process: other images
    for condition in greedy:
        assert (a[condition]["n_real"], a[condition]["n_fake"]) == (5, 5) == (b[condition]["n_real"],
                                                                              b[condition]["n_fake"])
        for key in ("fid", "kid_mean", "kid_std"):
            assert b[condition][key] == pytest.approx(a[condition][key], rel=TOL, abs=TOL), (condition, key)
    # the cached Inception features: every image once, in order, the same pixels' key, within tolerance
    for name in ("real", *greedy):
        (features_one, key_one), (features_two, key_two) = (_inception_features(run / f"{name}.{FEATURES}")
                                                            for run in (one, two))
        assert features_one.shape == features_two.shape == (5, 2048) and key_one == key_two, name
        torch.testing.assert_close(features_two, features_one, rtol=TOL, atol=1e-6)
    # each process ran the network on its own part of every image set (3 + 2 images), none on all of them
    logs = [two.parents[2] / f"scored-rank{rank}.json" for rank in (0, 1)]
    calls = [json.loads(log.read_text())["inception"] for log in logs]
    assert calls[0] == [3] * 5 and calls[1] == [2] * 5  # the real images and 4 conditions


def _cached(run: Path) -> dict[str, dict[str, np.ndarray]]:
    """The run's per-text quality cache: {kind: {key: row}} (one file per kind: one scoring model)."""
    out = {}
    for path in (run.parent / CACHE_FOLDER).glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as f:
            out[path.name.split("-")[0]] = dict(zip(json.loads(f.metadata()["keys"]), f.get_tensor("rows").numpy()))
    return out


def test_evaluate_quality_two_processes_score_each_text_once_same_metrics(eval_runs):
    one, two = eval_runs["evaluate-quality"]
    rows = read_jsonl(eval_runs["generate"][0] / "greedy-blocked2.generations.jsonl")
    contexts, continuations, references = (scored_texts(rows, part) for part in ("context", "continuation",
                                                                                  "reference"))
    # the scoring model ran on each text once over the two processes, each on its own share
    logs = [two.parents[2] / f"scored-rank{rank}.json" for rank in (0, 1)]
    scored = [json.loads(log.read_text()) if log.is_file() else {"features": [], "fluency": []} for log in logs]
    expected = {"features": set(continuations) | set(references),
                "fluency": {*zip(contexts, continuations), *zip(contexts, references)}}
    for kind, texts in expected.items():
        mine = [[text if isinstance(text, str) else tuple(text) for call in s[kind] for text in call] for s in scored]
        assert mine[0] and mine[1], kind  # both processes did part of the work
        assert len(mine[0]) + len(mine[1]) == len(texts) and set(mine[0]) | set(mine[1]) == texts, kind

    a, b = (json.loads((run / "results.json").read_text()) for run in (one, two))
    entry = b["runs"]["greedy-blocked2"]
    assert (entry["mauve_texts"], entry["fluency_texts"]) == (5, 5) and _config(two)["processes"] == 2
    _close(a["runs"], b["runs"])
    _close(a["human_reference"], b["human_reference"])
    c, d = (json.loads((run / "per_item.json").read_text()) for run in (one, two))
    for items_one, items_two in ((c["runs"]["greedy-blocked2"], d["runs"]["greedy-blocked2"]),
                                 (c["human_reference"], d["human_reference"])):
        assert len(items_two["fluency_perplexity"]) == 5
        np.testing.assert_allclose(items_two["fluency_perplexity"], items_one["fluency_perplexity"], rtol=1e-5)
    # the cache, written by the main process alone, holds every text, with one process's rows within tolerance
    cached_one, cached_two = _cached(one), _cached(two)
    assert set(cached_two) == {"features", "fluency"}
    for kind in cached_one:
        assert cached_one[kind].keys() == cached_two[kind].keys()
        for key, row in cached_one[kind].items():
            np.testing.assert_allclose(cached_two[kind][key], row, rtol=1e-5, atol=1e-6)
    # MAUVE is mauve-text's number on the gathered features
    features = cached_two["features"]
    direct = mauve_score(np.stack([features[text_key(t)] for t in continuations]),
                         np.stack([features[text_key(t)] for t in references]))
    assert entry["mauve"] == direct["mauve"]
