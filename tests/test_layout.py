"""The layout rule: hyperfit_core never imports an adapter (not even lazily); adapters never import each other;
hyperfit_rate reads run dirs' files, never model code, and nobody imports it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"hyperfit_core": {"hyperfit_vision", "hyperfit_text", "hyperfit_rate"},
             "hyperfit_vision": {"hyperfit_text", "hyperfit_rate"}, "hyperfit_text": {"hyperfit_vision", "hyperfit_rate"},
             "hyperfit_rate": {"hyperfit_vision", "hyperfit_text", "torch", "transformers"}}


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_respect_the_layout(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    for path in files:
        bad = imported_packages(path) & FORBIDDEN[package]
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
