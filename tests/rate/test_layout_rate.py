"""hyperfit_rate stays small and its page is offline (its import rules are in tests/test_layout.py)."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "hyperfit_rate"


def test_modules_stay_small():
    for path in PACKAGE.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 300, path


def test_the_page_fetches_nothing_from_elsewhere():
    for path in list((PACKAGE / "templates").iterdir()) + list((PACKAGE / "static").iterdir()):
        text = path.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), path  # no CDN, no remote font
        assert "innerHTML" not in text and "document.write" not in text, path


def test_the_rating_app_runs_without_torch():
    """hyperfit_rate may use hyperfit_core's torch-free modules (errors, atomic, formats) and nothing that loads
    torch or transformers, even through them."""
    code = ("import sys, hyperfit_rate.cli, hyperfit_rate.app, hyperfit_rate.results, hyperfit_rate.server; "
            "from hyperfit_core.adapters import adapters; assert {'text', 'vision'} <= set(adapters()); "
            "print(sorted({'torch', 'transformers'} & set(sys.modules)))")  # rate build loads every adapter
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
