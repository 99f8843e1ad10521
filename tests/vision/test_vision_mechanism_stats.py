"""scripts/vision_mechanism_stats.py refuses an --out it cannot write before it reads any seed, and a seed whose files
are broken in one line (the summary itself is tested end to end in test_measure_vision_mechanism_script.py)."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "vision_mechanism_stats.py"


def test_an_out_that_cannot_be_written_is_refused_first(tmp_path):
    (tmp_path / "a-file").write_text("not a folder\n")
    out = tmp_path / "a-file" / "stats.json"
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "no-runs"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr == f"error: cannot write {out}: File exists\n"  # not "no finished seed"


def test_a_broken_results_file_is_one_error_line(tmp_path):
    evaluate = tmp_path / "runs" / "s0" / "evaluate" / "20260101-000000-vision-evaluate"
    evaluate.mkdir(parents=True)
    (evaluate / "results.json").write_text('{"base-greedy": ')  # cut short
    out = tmp_path / "stats.json"
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "runs"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith(f"error: cannot read {evaluate / 'results.json'}: Expecting")
    assert len(done.stderr.splitlines()) == 1 and not out.exists()
