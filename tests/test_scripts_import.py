"""Every script in scripts/ imports: the library moves under them (a renamed module broke fid_from_cache.py
once without any test noticing, since no test runs the long measurement scripts)."""

import runpy
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "scripts").glob("*.py"))


def test_there_are_scripts():
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_imports_without_running(script):
    source = script.read_text()
    assert 'if __name__ == "__main__"' in source, f"{script.name} runs on import"
    names = runpy.run_path(str(script), run_name="imported_by_test")
    assert names  # its module-level names (the functions main() would call) exist
