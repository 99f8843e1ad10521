"""The older text measure scripts (docs/results_text.md, docs/scale.md, docs/influence.md) end to end on a tiny
model: bad settings are refused before anything is written, a rerun skips what is done and scores only the runs its
done list names (never a second generate run of a condition or a half-written one), and scripts/measure_text_length.sh
stops with one error line when its background training dies before writing its prompts (it used to wait forever),
and resumes a stopped training from its checkpoint."""

import json
import os
import subprocess
from pathlib import Path

from ..stopped_training import assert_stopped_then_resumed
from .conftest import long_documents

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


def run(script: str, cwd: Path, *args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPTS / script), *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env}, timeout=900)  # a hang guard: about a minute each on two cores


def listed(done: Path) -> list[tuple[str, str]]:
    return [tuple(line.split()) for line in done.read_text().splitlines()]


def scored_inputs(eval_dir: Path) -> list[Path]:
    """The generate run dirs the one evaluate run under eval_dir scored (its config.json's inputs)."""
    (run_dir,) = [p for p in eval_dir.iterdir() if p.is_dir()]
    assert (run_dir / "results.json").is_file()
    config = json.loads((run_dir / "config.json").read_text())
    return [Path(p).parent for p in config["config"]["inputs"]]


def test_measure_text_refuses_bad_settings_then_resumes_and_scores_its_own_runs(tiny_llama_dir, tmp_path):
    data = tmp_path / "wiki.txt"
    data.write_text(long_documents(8, seed=3))
    env = dict(GGUF=str(tiny_llama_dir), DATA=str(data), N="4", WINDOW="16", PROMPTS="4", EPOCHS="1", NEW="8")
    out = tmp_path / "measure"

    for bad, line in ((dict(N="0"), "error: N must be a whole number >= 1, got '0'"),
                      (dict(DATA=str(tmp_path / "none.txt")), f"error: DATA is not a file: '{tmp_path / 'none.txt'}'"),
                      (dict(GGUF="./no-such-model"), "error: GGUF is neither a folder that exists nor a hub id "
                                                      "(owner/name): './no-such-model'")):
        refused = run("measure_text.sh", tmp_path, str(out), **{**env, **bad})
        assert (refused.returncode, refused.stderr.strip()) == (2, line)
        assert not out.exists()

    first = run("measure_text.sh", tmp_path, str(out), **env)
    assert first.returncode == 0, first.stderr + (out / "train.log").read_text()[-2000:]
    done = listed(out / "gen" / "done.txt")
    assert [name for name, _ in done] == [
        "hyperfitted-greedy", "hyperfitted-greedy-blocked", "base-greedy", "base-top-p"]
    assert sorted(Path(path).name for _, path in done) == sorted(p.name for p in (out / "gen").iterdir() if p.is_dir())
    assert [p.name for p in scored_inputs(out / "eval")] == [Path(path).name for _, path in done]
    (evaluated,) = [p for p in (out / "eval").iterdir() if p.is_dir()]
    assert (out / "eval.scored").read_text() == (out / "gen" / "done.txt").read_text()

    # a rerun redoes nothing listed and does not score again
    again = run("measure_text.sh", tmp_path, str(out), **env)
    assert again.returncode == 0, again.stderr
    assert listed(out / "gen" / "done.txt") == done
    assert [p for p in (out / "eval").iterdir() if p.is_dir()] == [evaluated]
    # a cut-off generate left a run dir behind: scoring again (its record removed) takes the listed runs, not it
    (out / "gen" / "20990101-000000-text-generate").mkdir()
    (out / "eval.scored").unlink()
    rescored = run("measure_text.sh", tmp_path, str(out), **env)
    assert rescored.returncode == 0, rescored.stderr
    assert [p.name for p in scored_inputs(out / "eval")] == [Path(path).name for _, path in done]

    other = run("measure_text.sh", tmp_path, str(out), **{**env, "EPOCHS": "2"})
    assert (other.returncode, other.stderr.strip()) == (
        2, f"error: {out} was made with EPOCHS=1, not EPOCHS=2; use another output folder or remove it")


def test_measure_trainable_scores_each_variant_once(tiny_llama_dir, tmp_path):
    data = tmp_path / "wiki.txt"
    data.write_text(long_documents(8, seed=3))
    env = dict(GGUF=str(tiny_llama_dir), DATA=str(data), N="4", WINDOW="16", PROMPTS="4", EPOCHS="1", NEW="8",
               OMP_NUM_THREADS="1")
    out = tmp_path / "trainable"
    first = run("measure_trainable.sh", tmp_path, str(out), **env)
    assert first.returncode == 0, first.stderr
    names = ["full-greedy", "last1-greedy", "lora8-greedy", "base-greedy"]
    assert [name for name, _ in listed(out / "gen" / "done.txt")] == names
    (evaluated,) = [p for p in (out / "eval").iterdir() if p.is_dir()]
    assert sorted(json.loads((evaluated / "results.json").read_text())["runs"]) == sorted(names)
    again = run("measure_trainable.sh", tmp_path, str(out), **env)
    assert again.returncode == 0, again.stderr
    assert [p for p in (out / "eval").iterdir() if p.is_dir()] == [evaluated]
    assert len([p for p in out.glob("train-*") if p.is_dir()]) == 3
    assert all(len([r for r in p.iterdir() if r.is_dir()]) == 1 for p in out.glob("train-*") if p.is_dir())


def test_measure_text_length_stops_when_its_training_dies_before_the_prompts(tmp_path):
    data = tmp_path / "wiki.txt"
    data.write_text(long_documents(4, seed=3))
    not_a_model = tmp_path / "empty-folder"
    not_a_model.mkdir()
    failed = run("measure_text_length.sh", tmp_path, "0", str(tmp_path / "length"), BASE=str(not_a_model),
                 DATA=str(data), NUM_TRAIN="2", EPOCHS="1", NEW="8")
    out = tmp_path / "length" / "paper-s0"
    assert (failed.returncode, failed.stderr.strip()) == (
        2, f"error: training stopped before it wrote its prompts (see {out}/train.log)")
    assert not (out / "gen").exists()


def test_measure_text_length_runs_then_resumes_a_stopped_training(tiny_llama_dir, tmp_path):
    data = tmp_path / "wiki.txt"
    data.write_text(long_documents(12, seed=3))
    env = dict(BASE=str(tiny_llama_dir), DATA=str(data), NUM_TRAIN="8", NEW="8")
    seed = tmp_path / "length" / "paper-s0"
    args = ["bash", str(SCRIPTS / "measure_text_length.sh"), "0", str(tmp_path / "length")]
    # one step an epoch, a checkpoint every 100 steps: stopped after step 100, resumed to the end
    assert_stopped_then_resumed(args, tmp_path, {**os.environ, "PYTHONPATH": str(ROOT), **env, "EPOCHS": "160"}, seed)
    finished = run("measure_text_length.sh", tmp_path, "0", str(tmp_path / "length"), **env, EPOCHS="160")
    assert finished.returncode == 0, finished.stderr
    assert [name for name, _ in listed(seed / "gen" / "done.txt")] == [
        "base-greedy", "base-top-p", "hyperfitted-greedy", "hyperfitted-greedy-blocked5"]
    done = listed(seed / "gen" / "done.txt")
    assert [p.name for p in scored_inputs(seed / "eval")] == [Path(path).name for _, path in done]
