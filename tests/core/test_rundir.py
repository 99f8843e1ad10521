import json
import shutil
import subprocess
from pathlib import Path

from hyperfit_core.rundir import RunDir, source_revision

ROOT = Path(__file__).resolve().parents[2]


def test_run_config_records_the_commit_the_code_ran_from(tmp_path):
    # an editable install's version number says nothing about which code ran: the run dir names the commit
    run = RunDir(tmp_path / "run")
    config = json.loads(run.write_config({"a": 1}, seed=3, command="test").read_text())
    # what git itself says of this checkout (a CI copy without .git, or a git that refuses the folder: None)
    expected = None
    if shutil.which("git") and (ROOT / ".git").exists():
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
        expected = head.stdout.strip() if head.returncode == 0 else None
    source = config["versions"]["source"]
    assert (source and source["commit"]) == expected
    assert source is None or isinstance(source["dirty"], bool)


def test_no_git_checkout_records_no_commit(tmp_path, monkeypatch):
    assert source_revision(tmp_path) is None  # installed from a wheel: nothing to record, and no error
    (tmp_path / ".git").mkdir()  # a broken checkout (git fails) still lets the run be recorded
    assert source_revision(tmp_path) is None
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    assert source_revision(ROOT) is None
