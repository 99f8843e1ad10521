"""The README's main command runs end to end (with fewer epochs, to keep the suite fast)."""

import json

from PIL import Image

from hyperfit_vision.demo import run_demo


def test_demo_writes_grid_results_and_config(tmp_path):
    run = run_demo(tmp_path, seed=0, epochs=1)
    with Image.open(run / "grid.png") as grid:
        assert grid.height > 16 * 16 * 4  # 16 held-out images, 4x upscaled
    results = json.loads((run / "results.json").read_text())
    assert {"base-greedy", "base-top-p", "hyperfit-greedy", "hyperfit-blocked", "real"} <= set(results)
    assert json.loads((run / "config.json").read_text())["config"]["base"].endswith("fashion-base")
    assert (run / "model" / "preprocessor_config.json").is_file()
    assert any(r["event"] == "demo_done" for r in run.read_metrics())
