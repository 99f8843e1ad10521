"""Every script in scripts/ imports: the library moves under them (a renamed module broke fid_from_cache.py
once without any test noticing, since no test runs the long measurement scripts). Every number a script takes
has a range, and a value outside it is argparse's one error line before the script does anything."""

import re
import runpy
import sys
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


NUMBER_OPTION = re.compile(r'add_argument\(\s*"(--[a-z0-9-]+)",\s*type=(int|float|COUNT|SEED|NON_NEGATIVE|POSITIVE)\b')
OUT_OF_RANGE = {"COUNT": "0", "POSITIVE": "0", "SEED": "-1", "NON_NEGATIVE": "-1"}
FREE_NUMBERS = {("plot_train_loss.py", "--reference")}  # a loss drawn as a line: any number is one


def number_options(script: Path) -> list[tuple[str, str]]:
    return [m.groups() for m in NUMBER_OPTION.finditer(script.read_text())
            if (script.name, m.group(1)) not in FREE_NUMBERS]


def test_every_script_number_option_has_a_range():
    unchecked = [f"{s.name} {flag}" for s in SCRIPTS for flag, kind in number_options(s) if kind in ("int", "float")]
    assert unchecked == []  # a bare int / float lets 0 or -3 through to a traceback deep in the run


@pytest.mark.parametrize("script", [s for s in SCRIPTS if number_options(s)], ids=lambda p: p.name)
def test_a_number_out_of_range_is_one_error_line_before_any_work(script, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)  # nothing may be written: the folder stays empty
    main = runpy.run_path(str(script), run_name="imported_by_test")["main"]
    for flag, kind in number_options(script):
        monkeypatch.setattr(sys, "argv", [script.name, flag, OUT_OF_RANGE[kind]])
        with pytest.raises(SystemExit) as refused:
            main()
        assert refused.value.code == 2
        error = capsys.readouterr().err.splitlines()[-1]
        assert re.fullmatch(rf".*error: argument {flag}: must (be at least 1|be positive|not be negative), got .*",
                            error), error
    assert list(tmp_path.iterdir()) == []
