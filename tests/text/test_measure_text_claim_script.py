"""scripts/measure_text_claim.sh end to end on a tiny model (1 seed, 1 corpus, 4 prompts): the four conditions on the
same prompts, scripts/measure_text_claim_temperature.sh's entropy-matched condition, then with MECHANISM=1 the layer
analysis, the static logit bias, the ranks and the four mechanism conditions appended to the same (seed, corpus), and
with LORA=1 LoRA runs on the last K blocks, their conditions and one analysis of every model; a rerun skips what is
done."""

import json
import os
import subprocess
import sys
from pathlib import Path

from ..stopped_training import assert_stopped_then_resumed
from .conftest import long_documents

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "measure_text_claim.sh"


def script_env(base: Path, **env) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "BASE": str(base), "NUM_TRAIN": "4", "EPOCHS": "1", "PROMPTS": "4",
            "CORPORA": "news", "THREADS": "1", **env}


def run_script(cwd: Path, base: Path, script: Path = SCRIPT, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), "0", "claim"], cwd=cwd, env=script_env(base, **env),
                          capture_output=True, text=True, timeout=900)  # a hang guard: about a minute on two cores


def test_the_claim_script_and_its_mechanism_conditions_share_the_prompts(tiny_llama_dir, tmp_path):
    (tmp_path / "data" / "text").mkdir(parents=True)
    (tmp_path / "data" / "text" / "wikipedia.txt").write_text(long_documents(12, seed=3))
    (tmp_path / "data" / "text" / "news.txt").write_text(long_documents(6, seed=4))
    done = tmp_path / "claim" / "s0" / "gen-news" / "done.txt"

    refused = run_script(tmp_path, tiny_llama_dir, LORA="1", LORA_LAYERS="1 0")  # before anything is written
    assert refused.returncode == 2 and refused.stderr.strip() == "error: LORA_LAYERS takes block counts >= 1 or all, got '0'"
    assert not (tmp_path / "claim").exists()

    first = run_script(tmp_path, tiny_llama_dir)
    assert first.returncode == 0, first.stderr + (tmp_path / "claim" / "s0" / "train.log").read_text()[-2000:]
    assert [line.split()[0] for line in done.read_text().splitlines()] == [
        "hyperfitted-greedy", "base-greedy", "base-top-p", "hyperfitted-greedy-blocked5"]
    assert not (tmp_path / "claim" / "s0" / "mechanism").exists()

    temperature = run_script(tmp_path, tiny_llama_dir, SCRIPT.with_name("measure_text_claim_temperature.sh"))
    assert temperature.returncode == 0, temperature.stderr
    (match,) = (tmp_path / "claim" / "s0" / "entropy").glob("*/entropy_match.json")
    assert json.loads(match.read_text())["temperature"] > 0
    assert [line.split()[0] for line in done.read_text().splitlines()][4:] == ["base-temperature"]

    second = run_script(tmp_path, tiny_llama_dir, MECHANISM="1")
    assert second.returncode == 0, second.stderr
    lines = done.read_text().splitlines()
    names = [line.split()[0] for line in lines]
    assert names[:5] == ["hyperfitted-greedy", "base-greedy", "base-top-p", "hyperfitted-greedy-blocked5",
                         "base-temperature"]
    assert names[5:] == ["base-logit-bias", "swap-last1", "swap-last2", "swap-lastall"]  # the five were not generated again

    mechanism = tmp_path / "claim" / "s0" / "mechanism"
    assert (mechanism / "logit_bias.safetensors").is_file()
    (layers,) = mechanism.glob("analyze/*/layers.json")
    assert json.loads(layers.read_text())
    (ranks,) = mechanism.glob("ranks-news/*/ranks.json")
    assert json.loads(ranks.read_text())
    for k in (1, 2, "all"):
        config = json.loads((mechanism / f"swap-last{k}" / "config.json").read_text())
        assert config["num_hidden_layers"] == 2

    # every condition continued the same 4 prompts, so the stats script can pair them
    from safetensors.numpy import load_file
    import numpy as np
    contexts = [load_file(str(next((tmp_path / line.split(maxsplit=1)[1]).glob("*.generations.safetensors"))))["contexts"]
                for line in lines]
    assert all(c.shape[0] == 4 and np.array_equal(c, contexts[0]) for c in contexts)

    third = run_script(tmp_path, tiny_llama_dir, MECHANISM="1")
    assert third.returncode == 0 and done.read_text().splitlines() == lines

    # LORA=1: LoRA on the last block and on every block, trained on the same windows, each decoded on the same prompts
    lora = run_script(tmp_path, tiny_llama_dir, LORA="1", LORA_LAYERS="1 all", LORA_LR="1e-2")
    assert lora.returncode == 0, lora.stderr
    lora_lines = done.read_text().splitlines()
    assert lora_lines[:9] == lines and [line.split()[0] for line in lora_lines[9:]] == ["lora-last1", "lora-lastall"]
    runs = {k: next((tmp_path / "claim" / "s0" / "lora" / f"lora-last{k}" / "train").glob("*/config.json"))
            for k in (1, "all")}
    full = json.loads(next((tmp_path / "claim" / "s0" / "train").glob("*/config.json")).read_text())["config"]["cli"]
    for k, path in runs.items():
        cli = json.loads(path.read_text())["config"]["cli"]
        assert cli["lora_rank"] == 16 and cli["train_layers"] == ("last:1" if k == 1 else None)
        assert (cli["data_seed"], cli["num_train"], cli["epochs"]) == (full["data_seed"], full["num_train"], full["epochs"])
    (analysis,) = (tmp_path / "claim" / "s0" / "lora" / "analyze-1-all").glob("*/analysis.json")
    assert set(json.loads(analysis.read_text())) >= {"base", "hyperfitted", "lora-last1", "lora-lastall"}
    lora_contexts = [load_file(str(next((tmp_path / line.split(maxsplit=1)[1]).glob("*.generations.safetensors"))))
                     ["contexts"] for line in lora_lines[9:]]
    assert all(np.array_equal(c, contexts[0]) for c in lora_contexts)
    again = run_script(tmp_path, tiny_llama_dir, LORA="1", LORA_LAYERS="1 all", LORA_LR="1e-2")
    assert again.returncode == 0 and done.read_text().splitlines() == lora_lines

    # a rerun asking for other settings than the seed's runs were made with would reuse those runs: refused instead
    timings = (tmp_path / "claim" / "s0" / "timings.txt").read_text()
    for env, told in [({"LR": "1e-3"}, "LR=2e-4, not LR=1e-3"),
                      ({"LORA": "1", "LORA_LAYERS": "1", "LORA_LR": "2e-3"}, "LORA_LR=1e-2, not LORA_LR=2e-3")]:
        other = run_script(tmp_path, tiny_llama_dir, **env)
        assert other.returncode == 2 and told in other.stderr and len(other.stderr.strip().splitlines()) == 1
    assert (tmp_path / "claim" / "s0" / "timings.txt").read_text() == timings

    # the stats script pairs the LoRA conditions with hyperfitted greedy and reports the loss each run reached
    stats = subprocess.run([sys.executable, str(ROOT / "scripts" / "text_claim_stats.py"), "claim", "--out", "stats",
                            "--quality-model", "none", "--device", "cpu", "--reps", "200"], cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600)
    assert stats.returncode == 0, stats.stderr
    record = json.loads((tmp_path / "stats" / "text_claim_stats.json").read_text())
    assert {r["b"] for r in record["comparisons"] if r["b"].startswith("lora")} == {"lora-last1", "lora-lastall"}
    (seed,) = record["lora"].values()
    events = [json.loads(line) for run in (tmp_path / "claim" / "s0" / "lora").glob("lora-last*/train/*")
              for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = {e["mean_loss"] for e in events if e.get("event") == "epoch"}
    assert set(seed["train"]) == {"hyperfitted", "lora-last1", "lora-lastall"}
    assert {seed["train"][k]["mean_loss"] for k in ("lora-last1", "lora-lastall")} == losses  # one epoch each
    assert set(seed["analysis"]) == {"base", "hyperfitted", "lora-last1", "lora-lastall"}
    assert all(v["perplexity"] > 1 for v in seed["analysis"].values())
    assert "| s0 | lora-lastall | 1 |" in (tmp_path / "stats" / "text_claim_stats.md").read_text()


def test_a_stopped_training_is_resumed_from_its_checkpoint(tiny_llama_dir, tmp_path):
    """A session closed mid-training loses only the steps after the last checkpoint (one each epoch): the rerun
    resumes that run dir instead of removing it and hyperfitting from step 0."""
    (tmp_path / "data" / "text").mkdir(parents=True)
    (tmp_path / "data" / "text" / "wikipedia.txt").write_text(long_documents(12, seed=3))
    (tmp_path / "data" / "text" / "news.txt").write_text(long_documents(6, seed=4))
    env = script_env(tiny_llama_dir, EPOCHS="200", TARGET="1e-9")  # one step an epoch; no early stop at the target
    assert_stopped_then_resumed(["bash", str(SCRIPT), "0", "claim"], tmp_path, env, tmp_path / "claim" / "s0")
