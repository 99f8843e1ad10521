"""The layout rule: hyperfit_core never imports an adapter (not even lazily); adapters never import each other;
hyperfit_rate reads run dirs' files, never model code, and nobody imports it."""

import ast
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# the adapters: the packages of the modalities pyproject registers (hyperfit.modalities; docs/extending.md)
ADAPTERS = sorted({value.split(".")[0] for value in tomllib.loads((ROOT / "pyproject.toml").read_text())
                   ["project"]["entry-points"]["hyperfit.modalities"].values()})
FORBIDDEN = {"hyperfit_core": {*ADAPTERS, "hyperfit_rate"}, "hyperfit_rate": {*ADAPTERS, "torch", "transformers"},
             **{adapter: {*ADAPTERS, "hyperfit_rate"} - {adapter} for adapter in ADAPTERS}}


def test_the_adapters_are_those_pyproject_registers():
    assert {"hyperfit_vision", "hyperfit_text"} <= set(ADAPTERS)
    assert all((ROOT / adapter / "__init__.py").is_file() for adapter in ADAPTERS)


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


PACKAGES = ("hyperfit_core", *ADAPTERS, "hyperfit_rate")
# the file names of a run dir (hyperfit_core/formats.py spells each once); what old run dirs hold on disk
RUN_FILE_NAMES = ("config.json", "metrics.jsonl", "train_config.json", "train_tokens.safetensors",
                  "prompts.safetensors", "palette.json", "results.json", "per_item.json", "completions.safetensors",
                  "generations.safetensors", "generations.jsonl", "inception.safetensors",
                  "entropy_match.json", "ranks.json", "layers.json", "swap_blocks.json")


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body and \
                isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            found.add(id(node.body[0].value))
    return found


def code_strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string in the code (f-string parts too), docstrings left out: they document."""
    tree = ast.parse(path.read_text())
    docs = _docstrings(tree)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs]


def test_run_file_names_are_spelled_only_in_formats():
    """A run dir's file names live in hyperfit_core/formats.py; every package and script takes them from there
    (help texts and messages too), so a name is changed, or looked up, in one place."""
    import re

    from hyperfit_core import formats

    assert {formats.RUN_CONFIG, formats.METRICS, formats.TRAIN_CONFIG, formats.TRAIN_TOKENS, formats.PROMPTS,
            formats.PALETTE, formats.RESULTS, formats.PER_ITEM, formats.COMPLETIONS, formats.GENERATIONS, formats.GENERATION_TEXTS,
            formats.FEATURES, formats.ENTROPY_MATCH, formats.RANKS, formats.LAYERS,
            formats.SWAP_RECORD} == set(RUN_FILE_NAMES)
    name = re.compile(r"(?<![\w])(" + "|".join(re.escape(n) for n in RUN_FILE_NAMES) + r")(?![\w])")
    found = []
    for path in sorted(p for folder in (*PACKAGES, "scripts") for p in (ROOT / folder).rglob("*.py")):
        if path == ROOT / "hyperfit_core" / "formats.py":
            continue
        found += [f"{path.relative_to(ROOT)}:{line}: {text!r}" for line, text in code_strings(path)
                  if name.search(text)]
    assert not found, "run-file names spelled outside hyperfit_core/formats.py:\n" + "\n".join(found)


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


def test_the_core_names_no_adapters_model():
    """What is special about ImageGPT (its model class, its plain MLP) is the vision adapter's to say; the core
    learns it through hyperfit_core.model_types.register_model_type. Comments and docstrings may name it."""
    found = []
    for path in sorted((ROOT / "hyperfit_core").rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = [(n.lineno, n.id) for n in ast.walk(tree) if isinstance(n, ast.Name)]
        names += [(n.lineno, n.attr) for n in ast.walk(tree) if isinstance(n, ast.Attribute)]
        found += [f"{path.relative_to(ROOT)}:{line}: {text!r}" for line, text in code_strings(path) + names
                  if "imagegpt" in text.lower()]
    assert not found, "\n".join(found)
