"""scripts/plot_train_loss.py: epoch rows from metrics.jsonl, `A+B` numbering a continuation on from its first
stage, and the JSON of the curves it drew."""

import json
import runpy
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "plot_train_loss.py"


def _run_dir(path: Path, losses: list[float], steps_per_epoch: int) -> Path:
    path.mkdir(parents=True)
    rows = [{"event": "step", "epoch": 1, "step": 1, "loss": 9.0}]  # steps are not epochs: left out
    rows += [{"event": "epoch", "epoch": i + 1, "step": (i + 1) * steps_per_epoch, "mean_loss": loss, "seconds": 2.0}
             for i, loss in enumerate(losses)]
    (path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_continuation_is_numbered_on_and_saved(tmp_path, monkeypatch):
    first = _run_dir(tmp_path / "a", [0.9, 0.8], steps_per_epoch=10)
    second = _run_dir(tmp_path / "b", [0.7], steps_per_epoch=10)
    alone = _run_dir(tmp_path / "c", [0.95], steps_per_epoch=5)
    out, js = tmp_path / "loss.png", tmp_path / "curves.json"
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), f"{first}+{second}", str(alone), "--label", "two stages", "one",
                                      "--target", "0.25", "--out", str(out), "--json", str(js)])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = json.loads(js.read_text())["curves"]
    assert [(r["epoch"], r["step"], r["stage"], r["mean_loss"]) for r in curves["two stages"]] == [
        (1, 10, 1, 0.9), (2, 20, 1, 0.8), (3, 30, 2, 0.7)]
    assert [r["epoch"] for r in curves["one"]] == [1]


def test_bad_arguments_are_one_line_before_anything_is_written(tmp_path, monkeypatch, capsys):
    import pytest

    run = _run_dir(tmp_path / "a", [0.9, 0.8], steps_per_epoch=10)
    empty = _run_dir(tmp_path / "empty", [], steps_per_epoch=10)
    (tmp_path / "curves.json").write_text("{}")
    for args, told in (
            ([str(run), "--out", str(tmp_path / "curves.json")],  # would have replaced the JSON with an image
             f"error: {tmp_path / 'curves.json'} is where a PNG would be written: name a .png file"),
            ([str(run), str(run), "--label", "one", "--out", str(tmp_path / "x.png")],  # zip dropped a run
             "error: --label takes one distinct label per run: 2 runs, labels ['one']"),
            ([str(run), str(run), "--label", "a", "a", "--out", str(tmp_path / "x.png")],  # one curve over the other
             "error: --label takes one distinct label per run: 2 runs, labels ['a', 'a']"),
            ([str(run), "--out", str(tmp_path / "x.png"), "--json", str(tmp_path / "x.png")],
             f"error: --json and --out both name {tmp_path / 'x.png'}"),
            ([str(empty), "--out", str(tmp_path / "x.png")],
             f"error: {empty}: its metrics.jsonl holds no finished epoch"),
            ([str(tmp_path / "gone"), "--out", str(tmp_path / "x.png")], None)):
        monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(SCRIPT), run_name="__main__")
        message = str(exit_info.value.code)
        assert message.startswith("error: ") and "\n" not in message, message
        if told:
            assert message == told
    assert not (tmp_path / "x.png").exists() and (tmp_path / "curves.json").read_text() == "{}"
