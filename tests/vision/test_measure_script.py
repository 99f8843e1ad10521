"""scripts/measure_hyperfitting.py end to end on a tiny Fashion-MNIST layout (real idx files, 16 + 8 images):
the script behind docs/results.md trains through the recipe with the options it is given, benchmarks the four
conditions and writes a summary that --merge can aggregate and --compare can set beside others."""

import json
import runpy
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "measure_hyperfitting.py"


def _write_idx(raw: Path, prefix: str, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    for i in range(count):  # a bright rectangle on black, as Fashion-MNIST's objects
        top, left = rng.integers(2, 10, size=2)
        images[i, top:top + 14, left:left + 12] = rng.integers(60, 255)
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, count, 28, 28) + images.tobytes())
    labels = rng.integers(0, 10, size=count, dtype=np.uint8)
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, count) + labels.tobytes())


def _run(args, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    runpy.run_path(str(SCRIPT), run_name="__main__")


def test_measure_hyperfitting_trains_benchmarks_and_merges(tmp_path, monkeypatch, capsys):
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    _write_idx(raw, "train", 16, 0)
    _write_idx(raw, "t10k", 8, 1)
    out = tmp_path / "s0"
    _run(["--data-root", str(tmp_path / "data"), "--seeds", "0", "--num-train", "8", "--num-test", "4",
          "--epochs", "2", "--lr", "1e-3", "--lr-schedule", "linear", "--warmup-steps", "1", "--no-fid",
          "--threads", "1", "--out", str(out)], monkeypatch)
    run = out / "seed0-lr0.001"
    train = json.loads((run / "config.json").read_text())["config"]["spec"]["train"]
    assert (train["lr_schedule"], train["warmup_steps"], train["epochs"]) == ("linear", 1, 2)
    summary = json.loads((out / "summary.json").read_text())["runs"]["seed0-lr0.001"]
    assert set(summary["results"]) == {"base-greedy", "base-top-p", "hyperfit-greedy", "hyperfit-blocked", "real"}
    assert summary["prediction"]["train_loss"] > 0 and summary["prediction"]["train_loss_end"] > 0
    assert summary["prediction"]["hyperfit"]["perplexity"] != summary["prediction"]["base"]["perplexity"]
    # a second stage from that run's model: the same images (the saved tokens equal), another schedule
    _run(["--data-root", str(tmp_path / "data"), "--seeds", "0", "--num-train", "8", "--num-test", "4",
          "--epochs", "1", "--lr", "1e-4", "--start-from", str(run / "model"), "--no-completions", "--threads", "1",
          "--out", str(tmp_path / "stage2")], monkeypatch)
    from hyperfit_core.recipe import load_train_tokens

    stage2 = tmp_path / "stage2" / "seed0-lr0.0001"
    assert json.loads((stage2 / "config.json").read_text())["config"]["spec"]["model"] == str(run / "model")
    assert (load_train_tokens(stage2).ids == load_train_tokens(run).ids).all()
    _run(["--merge", str(out), "--out", str(tmp_path / "merged")], monkeypatch)
    assert "hyperfit-greedy" in (tmp_path / "merged" / "summary.md").read_text()
    # --compare: one row per setting, with the epochs actually trained and the final weights' loss
    capsys.readouterr()
    _run(["--compare", f"tiny={tmp_path / 'merged' / 'summary.json'}"], monkeypatch)
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny |")]
    assert len(row) == 1 and row[0].startswith("| tiny | 8 | 2 | 0.001 linear to 0 |")
    assert f"{summary['prediction']['train_loss_end']:.4g} (final weights)" in row[0]
    (tmp_path / "not-a-summary.json").write_text('{"a": 1}')
    with pytest.raises(SystemExit, match="not a summary.json"):
        _run(["--compare", f"x={tmp_path / 'not-a-summary.json'}"], monkeypatch)
