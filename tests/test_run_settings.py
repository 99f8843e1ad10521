"""scripts/run_settings.sh's same_settings: the measure_*.sh scripts skip finished steps on a rerun, so a rerun asking
for other settings must be refused rather than silently reuse runs made with the old ones."""

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
