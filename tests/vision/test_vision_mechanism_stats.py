"""scripts/vision_mechanism_stats.py refuses an --out it cannot write before it reads any seed (the summary itself is
tested end to end in test_measure_vision_mechanism_script.py)."""

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
