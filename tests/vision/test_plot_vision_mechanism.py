"""scripts/plot_vision_mechanism.py: FID against seq-rep-4 per condition from a vision mechanism summary; a summary
without FID, an --out folder that does not exist, or an --out not named .png, is one error line and no file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "plot_vision_mechanism.py"


def summary(with_fid: bool = True) -> dict:
    def scores(rep, fid):
        return {"seq_rep_4": rep, **({"fid": fid} if with_fid and fid is not None else {})}
    return {"per_seed": {
        "s0": {"conditions": {"hyperfitted-greedy": scores(0.45, 30.0), "base-greedy": scores(0.88, 120.0),
                              "swap-last1": scores(0.60, None)}, "real": {"seq_rep_4": 0.42}},
        "s1": {"conditions": {"hyperfitted-greedy": scores(0.47, 40.0), "base-greedy": scores(0.89, 130.0),
                              "swap-last1": scores(0.58, 230.0)}, "real": {"seq_rep_4": 0.40}}}}


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)


def test_points_are_the_seeds_that_scored_fid():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from plot_vision_mechanism import points, real_repetition
    finally:
        sys.path.remove(str(SCRIPT.parent))
    found = points(summary())
    assert found == {"hyperfitted-greedy": [("s0", 0.45, 30.0), ("s1", 0.47, 40.0)],
                     "base-greedy": [("s0", 0.88, 120.0), ("s1", 0.89, 130.0)],
                     "swap-last1": [("s1", 0.58, 230.0)]}  # seed 0 did not score its FID
    assert real_repetition(summary()) == pytest.approx(0.41)


def test_the_plot_is_written_and_bad_inputs_are_one_line(tmp_path):
    (tmp_path / "stats.json").write_text(json.dumps(summary()))
    done = run(tmp_path, "stats.json", "--out", "plot.png")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert done.stdout.strip() == "plot.png"

    (tmp_path / "no_fid.json").write_text(json.dumps(summary(with_fid=False)))
    for args, told in ((["no_fid.json", "--out", "x.png"], "error: the summary holds no condition with both FID and "
                        "seq-rep-4 (score FID: FID=1, FID_CONDITIONS of scripts/measure_vision_mechanism.sh)"),
                       (["stats.json", "--out", "missing/x.png"], "error: the folder of missing/x.png does not exist"),
                       # a slip that would have replaced the summary with an image
                       (["stats.json", "--out", "stats.json"],
                        "error: stats.json is where a PNG would be written: name a .png file"),
                       (["plot.png", "--out", "x.png"], None),
                       (["nothing.json", "--out", "x.png"], None)):
        refused = run(tmp_path, *args)
        assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert refused.stderr.startswith("error: ")
        if told:
            assert refused.stderr.strip() == told
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "missing").exists()
    assert json.loads((tmp_path / "stats.json").read_text()) == summary()
