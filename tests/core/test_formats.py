"""hyperfit_core.formats: JSON lines split at "\\n" only (a generation may hold U+2028 or U+0085), torch-free."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import iter_jsonl, jsonl_line, read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
# every character str.splitlines() breaks at besides "\n"; json.dumps(ensure_ascii=False) writes them raw
LINE_BREAKERS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def test_values_holding_line_breakers_stay_one_record(tmp_path):
    records = [{"continuation": f"a{ch}b", "i": i} for i, ch in enumerate(LINE_BREAKERS) if ch != "\r"]
    path = write_jsonl(tmp_path / "g.jsonl", records)
    assert read_jsonl(path) == records
    # and as `text generate` and other writers put them: json.dumps(ensure_ascii=False), "\n" between lines
    raw = "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n"
    assert "\u2028" in raw and "\x85" in raw
    (tmp_path / "h.jsonl").write_text(raw, encoding="utf-8")
    assert read_jsonl(tmp_path / "h.jsonl") == records


def test_blank_lines_are_skipped_crlf_is_read_and_numbers_are_file_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"a": 1}\r\n\r\n  \n{"a": 2}\n\n')
    assert list(iter_jsonl(path)) == [(1, {"a": 1}), (4, {"a": 2})]
    assert jsonl_line({"t": "\u2028"}) == '{"t": "\u2028"}\n'


@pytest.mark.parametrize("content, message", [
    (b'{"a": 1}\n{"a": \n', "b.jsonl:2: not a JSON line"),
    (b'{"a": 1}\n\n' + b"[" * 5000 + b"\n", "b.jsonl:3: not a JSON line (nested too deeply)"),
    (b'{"a": "\xff"}\n', "b.jsonl is not UTF-8 text"),
])
def test_a_bad_line_names_path_and_line(tmp_path, content, message):
    path = tmp_path / "b.jsonl"
    path.write_bytes(content)
    with pytest.raises(HyperfitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_jsonl(path)


def test_a_missing_file_is_one_error(tmp_path):
    with pytest.raises(HyperfitError, match="cannot read"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_formats_and_the_core_package_import_no_torch():
    code = "import sys, hyperfit_core, hyperfit_core.formats; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
