"""The README's main command runs end to end (with fewer epochs, to keep the suite fast)."""

import json
from pathlib import Path

import pytest
from PIL import Image

from hyperfit_core.cli import main
from hyperfit_core.errors import HyperfitError
from hyperfit_core.rundir import RunDir
from hyperfit_vision.demo import run_demo


def test_demo_writes_grid_results_and_config(tmp_path):
    run = run_demo(tmp_path, seed=0, epochs=1)
    with Image.open(run / "grid.png") as grid:
        assert grid.height > 16 * 16 * 4  # 16 held-out images, 4x upscaled
    results = json.loads((run / "results.json").read_text())
    assert {"base-greedy", "base-top-p", "hyperfit-greedy", "hyperfit-blocked", "real"} <= set(results)
    assert json.loads((run / "config.json").read_text())["config"]["spec"]["model"].endswith("fashion-base")
    assert (run / "model" / "preprocessor_config.json").is_file()
    assert any(r["event"] == "demo_done" for r in run.read_metrics())


def test_demo_rejects_more_training_images_than_shipped_before_writing(tmp_path):
    for bad in (0, 129):
        with pytest.raises(HyperfitError, match="--num-train must be between 1 and 128"):
            run_demo(tmp_path, num_train=bad)
    assert list(tmp_path.iterdir()) == []


def test_demo_cli_trains_on_the_requested_number_of_images(tmp_path, capsys):
    try:
        main(["vision", "demo", "--out", str(tmp_path), "--epochs", "1", "--num-train", "8"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["spec"]["num_train"] == 8 and config["spec"]["train"]["epochs"] == 1
    steps = [r for r in RunDir(run).read_metrics() if r["event"] == "step"]
    assert len(steps) == 1  # 8 images, batch 8, one epoch


def test_demo_cli_reports_a_bad_image_count_and_exits_non_zero(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["vision", "demo", "--out", str(tmp_path), "--num-train", "500"])
    assert exit_info.value.code == 2
    assert "--num-train must be between 1 and 128" in capsys.readouterr().err
