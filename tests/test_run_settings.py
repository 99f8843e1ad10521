"""scripts/run_settings.sh's same_settings: the measure_*.sh scripts skip finished steps on a rerun, so a rerun asking
for other settings must be refused rather than silently reuse runs made with the old ones; and its checks of counts,
rates and models, before a script writes anything."""

import os
import subprocess
from pathlib import Path

import pytest

SETTINGS = Path(__file__).resolve().parents[1] / "scripts" / "run_settings.sh"


def same_settings(file: Path, *pairs: str) -> subprocess.CompletedProcess:
    script = f'set -euo pipefail; source "{SETTINGS}"; same_settings "$@"; echo went on'
    return subprocess.run(["bash", "-c", script, "same_settings", str(file), *pairs], capture_output=True, text=True,
                          timeout=60)


def test_settings_are_recorded_kept_extended_and_a_changed_one_is_refused(tmp_path):
    file = tmp_path / "seed" / "settings.txt"
    first = same_settings(file, "LR=2e-4", "TRAIN_ARGS=--precision bf16 --target-loss 0.25")
    assert first.returncode == 0 and first.stdout == "went on\n"
    assert file.read_text() == "LR=2e-4\nTRAIN_ARGS=--precision bf16 --target-loss 0.25\n"

    assert same_settings(file, "LR=2e-4").returncode == 0  # a subset, as a later step records
    assert same_settings(file, "LR=2e-4", "LORA_LR=1e-2").returncode == 0
    assert file.read_text() == "LR=2e-4\nTRAIN_ARGS=--precision bf16 --target-loss 0.25\nLORA_LR=1e-2\n"

    changed = same_settings(file, "LORA_LR=1e-2", "TRAIN_ARGS=")
    assert changed.returncode == 2 and changed.stdout == ""  # the caller stops at once
    assert changed.stderr == (f"error: {file.parent} was made with TRAIN_ARGS=--precision bf16 --target-loss 0.25, "
                              "not TRAIN_ARGS=; use another output folder or remove it\n")
    assert file.read_text() == "LR=2e-4\nTRAIN_ARGS=--precision bf16 --target-loss 0.25\nLORA_LR=1e-2\n"
    assert not list(file.parent.glob("*.tmp"))


SCRIPTS = SETTINGS.parent


@pytest.mark.parametrize("script, env, told", [
    ("measure_text_claim.sh", {"PROMPTS": "0"}, "PROMPTS must be a whole number >= 1, got '0'"),
    ("measure_text_claim.sh", {"LR": "-1e-3"}, "LR must be a number > 0, got '-1e-3'"),
    ("measure_text_claim.sh", {"LORA": "1", "LORA_RANK": "4.5"}, "LORA_RANK must be a whole number >= 1, got '4.5'"),
    ("measure_text_claim_temperature.sh", {"THREADS": "two"}, "THREADS must be a whole number >= 1, got 'two'"),
    ("measure_vision_mechanism.sh", {"NUM_TEST": "0"}, "NUM_TEST must be a whole number >= 1, got '0'"),
    ("measure_vision_mechanism.sh", {"LORA_LR": "0"}, "LORA_LR must be a number > 0, got '0'"),
    ("measure_vision_mechanism.sh", {"FID_CONDITIONS": "base-greedy swap-last3"},
     "FID_CONDITIONS takes all or conditions of this run (hyperfitted-greedy hyperfitted-greedy-blocked base-greedy "
     "base-top-p base-temperature-d0 base-temperature-d1 base-temperature-d2 base-logit-bias swap-last1 swap-last2 "
     "swap-lastall lora-last1 lora-last2 lora-lastall), got 'swap-last3'"),
    # set empty, the block lists mean none (setting C ran without LoRA, and the old `${X:-default}` trained all
    # three LoRA models anyway); empty decode seeds or FID conditions are refused, not replaced by the defaults
    ("measure_vision_mechanism.sh", {"SWAP_LAYERS": "", "LORA_LAYERS": "", "FID_CONDITIONS": "lora-last1"},
     "FID_CONDITIONS takes all or conditions of this run (hyperfitted-greedy hyperfitted-greedy-blocked base-greedy "
     "base-top-p base-temperature-d0 base-temperature-d1 base-temperature-d2 base-logit-bias), got 'lora-last1'"),
    ("measure_vision_mechanism.sh", {"SAMPLE_SEEDS": " "}, "SAMPLE_SEEDS takes whole numbers >= 0, got nothing"),
    ("measure_vision_mechanism.sh", {"FID_CONDITIONS": ""}, "FID_CONDITIONS names conditions or all, got nothing"),
    ("measure_text_claim.sh", {"LORA": "1", "LORA_LAYERS": ""}, "LORA_LAYERS takes block counts >= 1 or all, got nothing"),
    ("measure_vision_mechanism.sh", {"BASE": "/no/such/model"},
     "BASE is neither a folder that exists nor a hub id (owner/name): '/no/such/model'"),
    ("measure_text_claim.sh", {}, "BASE is neither a folder that exists nor a hub id (owner/name): "
                                  "'data/text/smollm2-hf'"),  # the default, from a folder that has no data/
    ("measure_text_claim_temperature.sh", {"BASE": "./smollm2"},
     "BASE is neither a folder that exists nor a hub id (owner/name): './smollm2'"),
    # the older text measure scripts (their first argument is OUT, or SEED then OUT_ROOT)
    ("measure_text.sh", {"NEW": "-4"}, "NEW must be a whole number >= 1, got '-4'"),
    ("measure_text.sh", {"LR": "0"}, "LR must be a number > 0, got '0'"),
    ("measure_text.sh", {}, "GGUF is neither a folder that exists nor a hub id (owner/name): "
                            "'data/text/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'"),
    ("measure_trainable.sh", {"WINDOW": "sixty"}, "WINDOW must be a whole number >= 1, got 'sixty'"),
    ("measure_text_length.sh", {"EPOCHS": "0"}, "EPOCHS must be a whole number >= 1, got '0'"),
    ("measure_text_length.sh", {}, "BASE is neither a folder that exists nor a hub id (owner/name): "
                                   "'data/text/smollm2-hf'"),
])
def test_a_bad_setting_is_refused_in_one_line_before_anything_is_written(tmp_path, script, env, told):
    done = subprocess.run(["bash", str(SCRIPTS / script), "0", "out"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)
    assert done.returncode == 2 and done.stderr == f"error: {told}\n"
    assert list(tmp_path.iterdir()) == []


def test_a_seed_that_is_not_a_whole_number_is_refused(tmp_path):
    done = subprocess.run(["bash", str(SCRIPTS / "measure_text_claim.sh"), "s1", "out"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr == "error: SEED must be a whole number >= 0, got 's1'\n"
    assert list(tmp_path.iterdir()) == []


def test_a_model_is_a_path_that_exists_or_a_hub_id(tmp_path):
    def model(value: str) -> subprocess.CompletedProcess:
        script = f'set -euo pipefail; source "{SETTINGS}"; model BASE "$1"; echo went on'
        return subprocess.run(["bash", "-c", script, "model", value], capture_output=True, text=True, cwd=tmp_path,
                              timeout=60)

    (tmp_path / "local" / "model").mkdir(parents=True)
    for fine in ("local/model", str(tmp_path / "local" / "model"), "openai/imagegpt-small",
                 "HuggingFaceTB/SmolLM2-135M"):
        assert model(fine).stdout == "went on\n", fine
    for wrong in ("local/missing/model", "/abs/missing", "./missing", "../x/y", "imagegpt-small", "owner/", ""):
        refused = model(wrong)
        assert refused.returncode == 2 and refused.stdout == "", wrong
        assert refused.stderr == f"error: BASE is neither a folder that exists nor a hub id (owner/name): '{wrong}'\n"


@pytest.mark.parametrize("script", ["measure_vision_mechanism.sh", "measure_text_claim.sh"])
def test_a_seed_folder_another_run_holds_is_refused(tmp_path, script):
    """Two runs on one seed folder would resume the same training twice and append to the same done lists: the
    second is refused in one line while the first holds the folder's lock (here the test holds it), and writes
    nothing there; once the lock is released the folder is free again."""
    import fcntl

    seed = tmp_path / "out" / "s0"
    seed.mkdir(parents=True)
    (tmp_path / "base").mkdir()
    env = {**os.environ, "BASE": "base"}
    with open(seed / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = subprocess.run(["bash", str(SCRIPTS / script), "0", "out"], cwd=tmp_path, capture_output=True,
                              text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr == "error: out/s0 is in use by another run of a measure script (it holds out/s0/.lock)\n"
    assert sorted(p.name for p in seed.iterdir()) == [".lock"]

    script = f'set -euo pipefail; source "{SETTINGS}"; hold_folder "$1"; echo held'
    free = subprocess.run(["bash", "-c", script, "hold", str(seed)], capture_output=True, text=True, timeout=60)
    assert free.returncode == 0 and free.stdout == "held\n"


def in_bash(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f'set -euo pipefail; source "{SETTINGS}"; {script}', "x", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=60)


def test_a_done_list_names_each_finished_run_and_scoring_takes_those_once(tmp_path):
    """done_run / record_run / score_runs: the older text measure scripts' resume (their end-to-end tests are in
    tests/text/test_measure_text_scripts.py). A step records its run only once its command printed a run dir; the
    scoring command gets exactly the listed runs, runs once per list and again when the list grew."""
    for name in ("a", "b b"):  # a folder with a space stays one run dir
        (tmp_path / "gen" / name).mkdir(parents=True)
    listed = in_bash('record_run gen/done.txt a gen/a; record_run gen/done.txt b "gen/b b"; done_run gen/done.txt b; '
                     'echo "[$(done_run gen/done.txt c)]"', cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout == "gen/b b\n[]\n"
    assert (tmp_path / "gen" / "done.txt").read_text() == "a gen/a\nb gen/b b\n"
    nothing = in_bash("record_run gen/done.txt c ''", cwd=tmp_path)
    assert nothing.returncode == 2 and nothing.stderr == "error: c printed no run dir (got '')\n"
    assert (tmp_path / "gen" / "done.txt").read_text() == "a gen/a\nb gen/b b\n"

    # record_step: a command's last line of output is its run dir; a failing command lists nothing
    stepped = in_bash('record_step gen/done.txt c log.txt bash -c "echo made; echo gen/a"', cwd=tmp_path)
    assert stepped.returncode == 0 and (tmp_path / "gen" / "done.txt").read_text().endswith("c gen/a\n")
    failed = in_bash('record_step gen/done.txt e log.txt bash -c "echo oops >&2; exit 3"', cwd=tmp_path)
    assert failed.returncode == 2 and failed.stderr == "error: e failed (see log.txt)\n"
    assert (tmp_path / "log.txt").read_text() == "oops\n" and "e " not in (tmp_path / "gen" / "done.txt").read_text()
    (tmp_path / "gen" / "done.txt").write_text("a gen/a\nb gen/b b\n")

    # a scorer that writes its inputs into a run dir of --out, as `text evaluate` does, and counts its calls
    scorer = tmp_path / "scorer.sh"
    scorer.write_text('echo call >> calls; out=${@: -1}; mkdir -p "$out/run"; '
                      'printf "%s|" "${@:1:$#-2}" > "$out/run/results.json"\n')
    score = 'score_runs eval gen/done.txt bash scorer.sh'
    for _ in range(2):
        assert in_bash(score, cwd=tmp_path).returncode == 0
    assert (tmp_path / "eval" / "run" / "results.json").read_text() == "gen/a|gen/b b|"
    assert (tmp_path / "calls").read_text() == "call\n"
    (tmp_path / "gen" / "c").mkdir()
    assert in_bash("record_run gen/done.txt c gen/c; " + score, cwd=tmp_path).returncode == 0
    assert (tmp_path / "eval" / "run" / "results.json").read_text() == "gen/a|gen/b b|gen/c|"
    assert (tmp_path / "calls").read_text() == "call\ncall\n"
    failing = in_bash("record_run gen/done.txt d gen/c; score_runs eval gen/done.txt false", cwd=tmp_path)
    assert failing.returncode == 2 and failing.stderr == "error: scoring into eval failed (see eval.log)\n"
    assert not (tmp_path / "eval.scored").exists()  # a rerun scores again


def test_a_fresh_training_prints_only_its_run_and_a_failed_one_is_one_line(tmp_path):
    """train_fresh, the fresh-training step of every measure script: RUN=$(train_fresh ...) gets the run that saved
    its model, not the stamp lines a script's `stamp` also prints (measure_text.sh tees them); an earlier attempt in
    DIR is removed first; a failed training is one error line naming its log."""
    (tmp_path / "train" / "old-attempt").mkdir(parents=True)
    fake_train = 'mkdir -p "$2/run1/model"; echo trained'  # `train --out DIR`: a run dir with its model
    script = ('stamp() { echo "stamp $*" | tee -a timings.txt; }; '
              f'RUN=$(train_fresh train train train.log bash -c \'{fake_train}\' x); echo "RUN=$RUN"')
    done = in_bash(script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "RUN=train/run1\n"
    assert done.stderr == "stamp train start\nstamp train done train/run1\n"
    assert (tmp_path / "timings.txt").read_text() == done.stderr and (tmp_path / "train.log").read_text() == "trained\n"
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == ["run1"]

    failed = in_bash('stamp() { :; }; RUN=$(train_fresh train train train.log false); echo went on', cwd=tmp_path)
    assert failed.returncode == 2 and failed.stdout == ""
    assert failed.stderr == "error: training train failed (see train.log)\n"
    no_model = in_bash('stamp() { :; }; RUN=$(train_fresh train train train.log true); echo went on', cwd=tmp_path)
    assert no_model.returncode == 2
    assert no_model.stderr == "error: the train run under train saved no model (see train.log)\n"
