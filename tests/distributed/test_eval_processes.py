"""Every evaluation command under two CPU processes (gloo) against the same command in one process: the same
command line, only the launcher differs. Counts of 5 do not divide by 2 (parts of 3 and 2): every item exactly
once, in order; greedy tokens identical, metrics within float tolerance; one run dir, written once."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hyperfit_core.cli import main
from hyperfit_core.formats import read_jsonl
from tests.distributed.common import run_launcher
from tests.text.conftest import corpus_txt, tiny_llama_dir  # noqa: F401  (fixtures)
from tests.vision.conftest import image_folder_8px, tiny_imagegpt_dir  # noqa: F401  (fixtures)

COUNT = "5"  # items per command: not a multiple of the 2 processes
TOL = 1e-5


def _commands(text_run: Path, vision_run: Path, llama: Path, imagegpt: Path, images: Path, generated: Path,
              out: Path) -> dict[str, list[str]]:
    """The command lines, each writing under out/NAME."""
    common = ["--device", "cpu"]
    return {
        "generate": ["text", "generate", "--model", str(text_run / "model"), "--num-eval", COUNT, "--max-new-tokens",
                     "12", "--blocker", "--blocker-n", "2", "--batch-size", "2", *common],
        "evaluate": ["text", "evaluate", str(generated), "--batch-size", "2", *common],
        "analyze": ["text", "analyze", "--model", f"base={llama}", "--model", f"fit={text_run / 'model'}",
                    "--train-run", str(text_run), "--num-eval", COUNT, "--batch-size", "2", *common],
        "complete": ["vision", "complete", "--model", str(vision_run / "model"), "--data", str(images),
                     "--num-eval", COUNT, "--blocker", "--batch-size", "2", *common],
        "benchmark": ["vision", "benchmark", "--base", str(imagegpt), "--hyperfit", str(vision_run / "model"),
                      "--data", str(images), "--num-eval", COUNT, "--no-fid", "--batch-size", "2", *common],
        "vision-analyze": ["vision", "analyze", "--model", f"base={imagegpt}", "--model",
                           f"fit={vision_run / 'model'}", "--data", str(images), "--num-eval", COUNT,
                           "--batch-size", "2", *common],
    }


def _with_out(argv: list[str], out: Path) -> list[str]:
    return [*argv, "--out", str(out)]


def _run_dir(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


@pytest.fixture(scope="module")
def eval_runs(tiny_llama_dir, corpus_txt, tiny_imagegpt_dir, image_folder_8px, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("eval-processes")
    main(["text", "train", "--model", str(tiny_llama_dir), "--data", str(corpus_txt), "--num-train", "8",
          "--window", "48", "--num-eval", "6", "--context", "16", "--reference", "16", "--epochs", "2",
          "--lr", "3e-3", "--out", str(root / "text-train")])
    main(["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px), "--num-train", "4",
          "--epochs", "1", "--lr", "1e-3", "--out", str(root / "vision-train")])
    text_run, vision_run = _run_dir(root / "text-train"), _run_dir(root / "vision-train")
    one, two = root / "one", root / "two"
    main(_with_out(_commands(text_run, vision_run, tiny_llama_dir, tiny_imagegpt_dir, image_folder_8px, Path(),
                             one)["generate"], one / "generate"))
    generated = _run_dir(one / "generate")  # both evaluate the same generations
    commands = _commands(text_run, vision_run, tiny_llama_dir, tiny_imagegpt_dir, image_folder_8px, generated, one)
    for name, argv in commands.items():
        if name != "generate":
            main(_with_out(argv, one / name))
    spec = root / "spec.json"
    spec.write_text(json.dumps({"out": str(root), "commands": [_with_out(argv, two / name)
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
