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


PACKAGES = ("hyperfit_core", "hyperfit_vision", "hyperfit_text", "hyperfit_rate")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{module: the project modules it imports}, lazy imports inside functions included."""
    paths = {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph = {}
    for module, path in paths.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        graph[module] = {t for t in targets if t in paths and t != module}
    return graph


def test_no_import_cycle_among_the_projects_modules():
    """Each module builds only on modules that do not build on it (hyperfit_vision.data and hf_images did)."""
    graph = import_graph()
    assert {"hyperfit_vision.data", "hyperfit_vision.hf_images", "hyperfit_core.formats"} <= set(graph)
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:  # trail: the modules being visited, `module` last
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                pytest.fail("import cycle: " + " -> ".join(trail[trail.index(target):] + [target]))
            if target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
