"""scripts/measure_vision_mechanism.sh end to end on a tiny ImageGPT (1 seed, 3 held-out images): every condition
completes the same images and is scored side by side by `vision evaluate`; the temperature condition decodes at the
entropy-matched T; the swap-in, LoRA, ranks and analyses are made; a bad count is refused before anything is
written; a rerun skips what is done, refuses other settings, and scores (and analyses) again when a condition was
added; FID / KID are scored apart, for the conditions FID_CONDITIONS names."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..stopped_training import assert_stopped_then_resumed

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "measure_vision_mechanism.sh"
CONDITIONS = ["hyperfitted-greedy", "hyperfitted-greedy-blocked", "base-greedy", "base-top-p", "base-temperature-d0",
              "base-temperature-d1", "base-logit-bias", "swap-last1", "swap-lastall", "lora-last1"]


def script_env(base: Path, images: Path, **env) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "BASE": str(base), "DATA": str(images), "NUM_TRAIN": "4",
            "EPOCHS": "1", "LR": "1e-2", "NUM_TEST": "3", "NUM_ANALYZE": "2", "SAMPLE_SEEDS": "0 1",
            "SWAP_LAYERS": "1 all", "LORA_LAYERS": "1", "FID": "0", **env}


def run_script(cwd: Path, base: Path, images: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "0", "mech"], cwd=cwd, env=script_env(base, images, **env),
                          capture_output=True, text=True, timeout=1800)  # a hang guard: ~16 CLI calls, 4-5 minutes


def only(folder: Path, pattern: str) -> Path:
    (found,) = folder.glob(pattern)
    return found


def test_every_control_completes_the_same_images_and_is_scored_side_by_side(tiny_imagegpt_dir, image_folder_8px,
                                                                            tmp_path):
    refused = run_script(tmp_path, tiny_imagegpt_dir, image_folder_8px, LORA_LAYERS="1 0")
    assert refused.returncode == 2
    assert refused.stderr.strip() == "error: SWAP_LAYERS / LORA_LAYERS take block counts >= 1 or all, got '0'"
    assert not (tmp_path / "mech").exists()

    first = run_script(tmp_path, tiny_imagegpt_dir, image_folder_8px)
    seed = tmp_path / "mech" / "s0"
    assert first.returncode == 0, first.stderr
    evaluate = tmp_path / first.stdout.strip().splitlines()[-1]  # the script prints it under OUT_ROOT, "mech"
    results = json.loads((evaluate / "results.json").read_text())
    assert set(results) == {*CONDITIONS, "real"}
    assert all(results[name]["images"] == 3 for name in CONDITIONS)
    assert "overlap_max_span" in results["base-greedy"]  # measured against the seed's hyperfitting images

    match = json.loads(only(seed / "controls", "*/entropy_match.json").read_text())
    for d in (0, 1):
        config = json.loads(only(seed / "complete" / f"base-temperature-d{d}", "*/config.json").read_text())
        decoding = config["config"]["decoding"]
        assert decoding["temperature"] == match["temperature"] and decoding["seed"] == d
        assert decoding["top_k"] is None and decoding["top_p"] is None
    assert only(seed / "controls", "*/layers.json").is_file() and (seed / "logit_bias.safetensors").is_file()
    assert only(seed / "ranks", "*/ranks.json").is_file()
    lora = json.loads(only(seed / "lora-analyze-1", "*/analysis.json").read_text())
    assert {"base", "hyperfitted", "lora-last1"} <= set(json.dumps(lora).split('"'))
    lora_config = json.loads(only(seed / "lora-last1", "*/config.json").read_text())
    assert "last:1" in json.dumps(lora_config) and '"lora_rank": 16' in json.dumps(lora_config)

    timings = (seed / "timings.txt").read_text()
    again = run_script(tmp_path, tiny_imagegpt_dir, image_folder_8px)
    assert again.returncode == 0, again.stderr
    assert tmp_path / again.stdout.strip().splitlines()[-1] == evaluate
    added = (seed / "timings.txt").read_text()[len(timings):]
    assert " start " not in added and "seed done" in added  # nothing trained, completed or scored again

    # other settings would reuse runs made with the old ones: refused before any work
    changed = run_script(tmp_path, tiny_imagegpt_dir, image_folder_8px, LR="2e-2")
    assert changed.returncode == 2
    assert changed.stderr == f"error: mech/s0 was made with LR=1e-2, not LR=2e-2; use another output folder or remove it\n"
    assert (seed / "timings.txt").read_text() == timings + added
    # one more decode seed and LoRA block count: only they are made, the models' analysis is replaced by one with
    # the new LoRA model, and everything is scored again, they included
    more = run_script(tmp_path, tiny_imagegpt_dir, image_folder_8px, SAMPLE_SEEDS="0 1 2", LORA_LAYERS="1 all")
    assert more.returncode == 0, more.stderr
    evaluate = tmp_path / more.stdout.strip().splitlines()[-1]
    added = {"base-temperature-d2", "lora-lastall"}
    assert set(json.loads((evaluate / "results.json").read_text())) == {*CONDITIONS, *added, "real"}
    starts = [line.split()[1:3] for line in (seed / "timings.txt").read_text().splitlines() if " start " in line]
    assert starts[-5:] == [["complete", "base-temperature-d2"], ["train", "lora-lastall"], ["complete", "lora-lastall"],
                           ["analyze", "lora-analyze-1-all"], ["evaluate", "start"]]
    assert sorted(p.name for p in seed.glob("lora-analyze-*")) == ["lora-analyze-1-all", "lora-analyze-1-all.log"]

    # FID / KID of two conditions only (FID_CONDITIONS), in a second scoring beside the first, which is kept
    fid = run_script(tmp_path, tiny_imagegpt_dir, image_folder_8px, SAMPLE_SEEDS="0 1 2", LORA_LAYERS="1 all", FID="1",
                     FID_CONDITIONS="hyperfitted-greedy base-temperature-d1")
    assert fid.returncode == 0, fid.stderr
    assert tmp_path / fid.stdout.strip().splitlines()[-1] == evaluate
    fid_results = json.loads(only(seed / "evaluate-fid", "*/results.json").read_text())
    assert set(fid_results) == {"hyperfitted-greedy", "base-temperature-d1", "real"}
    assert fid_results["hyperfitted-greedy"]["fid"] >= 0 and "kid_mean" in fid_results["base-temperature-d1"]
    assert "fid" not in json.loads((evaluate / "results.json").read_text())["base-greedy"]

    # the seed summarised: every other condition paired image by image with hyperfitted greedy
    def summarise(root: str) -> dict:
        stats = subprocess.run([sys.executable, str(ROOT / "scripts" / "vision_mechanism_stats.py"), root, "--keep",
                                "kept", "--out", "stats.json"], cwd=tmp_path,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
        assert stats.returncode == 0, stats.stderr
        return {k: v for k, v in json.loads((tmp_path / "stats.json").read_text()).items() if k != "command"}

    (seed / "lora-last2" / "20260101-000000-vision-train").mkdir(parents=True)  # a K still training: not summarised
    summary = summarise("mech")
    assert summary["seeds"] == summary["image_seeds"] == ["s0"]
    paired = {(c["b"], c["metric"]): c["result"] for c in summary["comparisons"]}
    assert {b for b, _ in paired} == set(CONDITIONS) - {"hyperfitted-greedy"} | added | {"base-temperature-mean"}
    assert all(r["prompts"] == 3 and r["seeds"] == 1 for r in paired.values())
    # the seed's means are the means of its per-image values: the per-seed difference is the paired mean
    for row in summary["seed_differences"]:
        assert row["per_seed"]["s0"] == pytest.approx(paired[(row["b"], row["metric"])]["mean"], abs=1e-6)
    assert {(r["b"], r["metric"]) for r in summary["seed_differences"]} >= set(paired)
    # kept: the same summary without the runs (a later session's)
    assert summarise("no-runs-here") == summary
    seed = summary["per_seed"]["s0"]
    assert seed["entropy_match"]["temperature"] == match["temperature"]
    assert set(seed["train"]) == {"hyperfitted", "lora-last1", "lora-lastall"}
    assert seed["train"]["lora-last1"]["epochs"] == 1
    assert set(seed["analysis"]) == {"base", "hyperfitted", "lora-last1", "lora-lastall"}
    assert seed["wall_minutes"] > seed["fid_minutes"] > 0  # its finished steps' minutes, FID / KID's among them
    assert seed["step_minutes"]["train lora-lastall"] > 0
    assert seed["step_minutes"]["evaluate-fid"] == seed["fid_minutes"]
    assert seed["conditions"]["hyperfitted-greedy"]["fid"] == fid_results["hyperfitted-greedy"]["fid"]
    assert "fid" not in seed["conditions"]["base-greedy"]

    # FID asked for one more condition: the others' Inception features are reused from the earlier scoring, not
    # computed again (here hyperfitted greedy's are shifted in that scoring's cache, key kept: the new FID is that
    # of the shifted features, so they were read, not recomputed)
    from safetensors import safe_open
    from safetensors.torch import save_file

    seed_dir = tmp_path / "mech" / "s0"
    cache = only(seed_dir / "evaluate-fid", "*/hyperfitted-greedy.inception.safetensors")
    with safe_open(str(cache), "pt") as f:
        key, features = f.metadata(), f.get_tensor("features")
    save_file({"features": features + 5.0}, str(cache), metadata=key)
    more = run_script(tmp_path, tiny_imagegpt_dir, image_folder_8px, SAMPLE_SEEDS="0 1 2", LORA_LAYERS="1 all",
                      FID="1", FID_CONDITIONS="hyperfitted-greedy base-temperature-d1 base-greedy")
    assert more.returncode == 0, more.stderr
    rescored = json.loads(only(seed_dir / "evaluate-fid", "*/results.json").read_text())
    assert set(rescored) == {"hyperfitted-greedy", "base-temperature-d1", "base-greedy", "real"}
    assert rescored["base-temperature-d1"]["fid"] == pytest.approx(fid_results["base-temperature-d1"]["fid"])
    assert rescored["hyperfitted-greedy"]["fid"] > fid_results["hyperfitted-greedy"]["fid"] + 1


def test_a_stopped_training_is_resumed_from_its_checkpoint(tiny_imagegpt_dir, image_folder_8px, tmp_path):
    """A session closed mid-training (setting C's seeds were, at epoch 51 of 110) loses only the steps after the last
    checkpoint: the rerun resumes that run dir instead of removing it and hyperfitting from step 0."""
    env = script_env(tiny_imagegpt_dir, image_folder_8px, EPOCHS="200")  # one step an epoch, a checkpoint each
    assert_stopped_then_resumed(["bash", str(SCRIPT), "0", "mech"], tmp_path, env, tmp_path / "mech" / "s0")
