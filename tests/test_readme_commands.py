"""The README's first code block is the two commands a new user runs, and CI runs the second one of them.

Line 1 installs and runs the main job offline on the embedded default (tests/vision/test_demo.py runs that job);
line 2 installs the test tools and runs the whole suite. .ci/run must run that same test command, inside a virtual
environment it creates without the system's site packages (issue 21: a package the machine happened to have hid a
missing test dependency)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def first_code_block(markdown: str) -> list[str]:
    block = re.search(r"^```[^\n]*\n(.*?)^```", markdown, re.S | re.M)
    assert block, "README.md has no fenced code block"
    return block.group(1).strip("\n").splitlines()


def ci_commands() -> list[str]:
    """.ci/run's command lines, comments and blank lines left out."""
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_starts_with_the_install_and_run_line_and_the_test_line():
    install_and_run, install_and_test = first_code_block((ROOT / "README.md").read_text())
    assert install_and_run == "bash scripts/install.sh && hyperfit vision demo"
    assert install_and_test.startswith("bash scripts/install.sh --test && ") and "pytest" in install_and_test


def test_ci_runs_the_readmes_test_command_in_a_fresh_venv_without_system_packages():
    _, install_and_test = first_code_block((ROOT / "README.md").read_text())
    commands = ci_commands()
    assert commands[-1] == install_and_test  # the last thing CI runs, so its exit status is CI's
    venv = [n for n, line in enumerate(commands) if re.search(r"python3? -m venv\b", line)]
    assert venv, ".ci/run makes no virtual environment"
    made = commands[venv[0]]
    assert "--system-site-packages" not in made and re.search(r"\. \"?\$\w+\"?/bin/activate", made), made
    assert venv[0] < len(commands) - 1  # the venv is made (and activated) before the test command runs
