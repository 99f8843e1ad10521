"""hyperfit_rate stays small and its page is offline (its import rules are in tests/test_layout.py)."""

import re
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
