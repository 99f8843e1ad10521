"""Every third-party module the code and the tests import is declared in pyproject.toml.

CI runs the suite in a fresh virtual environment (.ci/run), but a package this machine happens to have must not
hide a missing declaration here either: the imports are read from the source (ast), each module is mapped to the
distribution that provides it (importlib.metadata), and that distribution must be named in pyproject:
- tests/ and scripts/ (tests import every script): in `dependencies` or the `test` extra, since that is all
  `pip install -e ".[test]"` brings;
- the packages: in `dependencies` or any extra (an extra's module, deepspeed say, is imported only where used).
A transitive requirement does not count: the package that brings it may drop it.
"""

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hyperfit_core", "hyperfit_vision", "hyperfit_text", "hyperfit_rate")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    return {normalized(re.split(r"[\s<>=!~;\[(@]", req, maxsplit=1)[0]) for req in requirements}


def declared() -> tuple[set[str], set[str]]:
    """(names the tests may rely on, names the packages may rely on)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    base = requirement_names(project.get("dependencies", []))
    every_extra = set().union(*(requirement_names(reqs) for reqs in extras.values()))
    return base | requirement_names(extras.get("test", [])), base | every_extra


def local_names() -> set[str]:
    """The repository's own importable names: its top-level folders and modules, the test and script modules
    (imported by plain name from their own folder) and the packages under tests/ (the fixtures' toy modality)."""
    names = {path.stem for path in ROOT.iterdir()}
    names |= {path.parent.name for path in (ROOT / "tests").rglob("__init__.py")}
    return names | {path.stem for folder in ("tests", "scripts") for path in (ROOT / folder).rglob("*.py")}


def absolute_imports(source: str) -> set[str]:
    """Top-level names of every absolute import in a module, wherever it stands (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def undeclared(folders, allowed: set[str]) -> list[str]:
    """`module (file): distribution` for each third-party import whose distribution is not in `allowed`."""
    providers = metadata.packages_distributions()
    local = local_names()
    problems = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for module in sorted(absolute_imports(path.read_text(encoding="utf-8"))):
                if module in sys.stdlib_module_names or module in local:
                    continue
                # a module this machine lacks is taken to be its own distribution's name (deepspeed)
                distributions = {normalized(d) for d in providers.get(module, [module])}
                if not distributions & allowed:
                    problems.append(f"{module} ({path.relative_to(ROOT)}): {', '.join(sorted(distributions))}")
    return problems


def test_tests_and_scripts_import_only_what_the_test_install_brings():
    for_tests, _ = declared()
    problems = undeclared(("tests", "scripts"), for_tests)
    assert not problems, "declare these in pyproject's dependencies or test extra:\n" + "\n".join(problems)


def test_packages_import_only_declared_distributions():
    _, for_packages = declared()
    problems = undeclared(PACKAGES, for_packages)
    assert not problems, "declare these in pyproject's dependencies or an extra:\n" + "\n".join(problems)


def test_the_check_sees_an_undeclared_import(tmp_path, monkeypatch):
    """The scan itself: a module that no requirement names is reported, one that a requirement names is not."""
    (tmp_path / "uses.py").write_text("import numpy\nfrom PIL import Image\n\ndef later():\n    import hyperfit_nowhere.sub\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    problems = undeclared(["."], requirement_names(["numpy>=1", "Pillow[extra]==10; python_version>'3'"]))
    assert problems == ["hyperfit_nowhere (uses.py): hyperfit-nowhere"]
