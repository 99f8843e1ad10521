"""hyperfit_rate reads the run dirs' files, never the adapters' code; nobody imports it; its page is offline."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "hyperfit_rate"


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_rate_imports_no_adapter_and_no_model_code():
    for path in PACKAGE.rglob("*.py"):
        assert not imported(path) & {"hyperfit_vision", "hyperfit_text", "torch", "transformers"}, path
    for package in ("hyperfit_core", "hyperfit_vision", "hyperfit_text"):
        for path in (ROOT / package).rglob("*.py"):
            assert "hyperfit_rate" not in imported(path), path


def test_modules_stay_small():
    for path in PACKAGE.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 300, path


def test_the_page_fetches_nothing_from_elsewhere():
    for path in list((PACKAGE / "templates").iterdir()) + list((PACKAGE / "static").iterdir()):
        text = path.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), path  # no CDN, no remote font
        assert "innerHTML" not in text and "document.write" not in text, path
