"""scripts/check_docs_numbers.py (issue 27): every number of a checked docs table or sentence is its committed
JSON's value at the printed precision; a changed number, a population sd, a missing row and a sentence that
no longer says what its spec checks are each caught and named by file and line."""

import runpy
import shutil
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
checker = runpy.run_path(str(ROOT / "scripts" / "check_docs_numbers.py"), run_name="imported_by_test")
prefixes = runpy.run_path(str(ROOT / "scripts" / "count_shared_prefixes.py"), run_name="imported_by_test")


def test_every_checked_number_in_the_docs_matches_its_json():
    report = checker["check"](ROOT)
    assert report.errors == []
    # the headline tables of README, results, influence, results_text and blocker_n are all checked
    assert report.tables >= 30 and report.numbers >= 1500 and report.claims >= 100


@pytest.fixture
def docs_copy(tmp_path):
    for name in ("README.md", "docs", "bench", "assets/fashion-base"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns("*.png", "*.safetensors"))
        else:
            shutil.copy(src, tmp_path / name)
    assert checker["check"](tmp_path).errors == []
    return tmp_path


def _edit(path: Path, old: str, new: str) -> int:
    """Replace the first `old` (the prose comes before its spec comment); the line it was on."""
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return text[:text.index(old)].count("\n") + 1


def test_a_changed_table_number_is_caught_with_file_line_and_both_values(docs_copy):
    line = _edit(docs_copy / "docs/results_text.md", "| base greedy | SmolLM2 GGUF | 0.490 |",
                 "| base greedy | SmolLM2 GGUF | 0.491 |")
    errors = checker["check"](docs_copy).errors
    assert len(errors) == 1
    assert errors[0].startswith(f"docs/results_text.md:{line}: [base greedy | TTR tok (last 64)]")
    assert "printed 0.491" in errors[0] and "0.489583" in errors[0]


def test_a_headline_number_of_the_readme_is_checked(docs_copy):
    line = _edit(docs_copy / "README.md", "| 47.3 ± 21 (23.9 ± 0.6*) |", "| 47.3 ± 21 (22.9 ± 0.6*) |")
    errors = checker["check"](docs_copy).errors
    assert len(errors) == 1 and errors[0].startswith(f"README.md:{line}:") and "printed 22.9" in errors[0]


def test_plus_minus_must_be_the_sample_sd(docs_copy):
    # 0.483 ± 0.117 over 4 seeds; the population sd of the same values is 0.101
    _edit(docs_copy / "docs/influence.md", "| **0.483 ± 0.117** |", "| **0.483 ± 0.101** |")
    errors = checker["check"](docs_copy).errors
    assert len(errors) == 1 and "printed 0.101, but sample sd of summary/hyperfitted-greedy/ttr/values" in errors[0]


def test_a_number_printed_to_more_digits_must_hold_to_them(docs_copy):
    # 0.9769 is right at 4 digits; 0.977 at 3; 0.9770 claims a 4th digit the JSON does not have
    _edit(docs_copy / "docs/results.md", "| base | - | - | 0.9769 | 0.6583 |", "| base | - | - | 0.9770 | 0.6583 |")
    errors = checker["check"](docs_copy).errors
    assert len(errors) == 1 and "printed 0.9770" in errors[0]


def test_a_sentence_that_changed_is_reported(docs_copy):
    _edit(docs_copy / "docs/results_text.md", "Each generate run took 27–57 s", "Each generate run took 25–57 s")
    errors = checker["check"](docs_copy).errors
    assert len(errors) == 1 and "claim not found" in errors[0] and "27–57" in errors[0]


def test_a_wrong_number_in_a_checked_sentence_is_caught(docs_copy):
    doc = docs_copy / "docs/results_text.md"
    _edit(doc, "Each generate run took 27–57 s: 27–28 s", "Each generate run took 25–57 s: 27–28 s")
    _edit(doc, "claim Each generate run took 27–57 s", "claim Each generate run took 25–57 s")  # the spec too
    errors = checker["check"](docs_copy).errors
    assert len(errors) == 1 and "printed 25, but" in errors[0] and "= 27" in errors[0]


def test_a_spec_naming_a_row_the_table_lacks_and_a_column_without_spec_are_errors(docs_copy):
    doc = docs_copy / "docs/results_text.md"
    _edit(doc, "row Wikipedia => wikipedia\n", "row Wikipedia => wikipedia\nrow Klingon => klingon\n")
    _edit(doc, "col 15 => {row}/epoch_mean_loss/14\n", "")
    errors = checker["check"](docs_copy).errors
    assert any("column '15' has no `col` line" in e for e in errors)
    _edit(doc, "col 13 => {row}/epoch_mean_loss/12\n", "col 13 => {row}/epoch_mean_loss/12\ncol 15 => -\n")
    errors = checker["check"](docs_copy).errors
    assert len(errors) == 1 and "the spec names row 'Klingon', which the table lacks" in errors[0]


def test_a_changed_json_is_caught_too(docs_copy):
    path = docs_copy / "docs/measurements/influence_text_type.json"
    path.write_text(path.read_text().replace("0.6591796875", "0.7591796875"))
    errors = checker["check"](docs_copy).errors
    assert errors and all(e.startswith("docs/influence.md:") for e in errors)
    assert any("printed 0.659" in e for e in errors)


@pytest.mark.parametrize("text, numbers", [
    ("seq-rep-4 0.884 -> 0.925", [0.884, 0.925]),        # the 4 of a name is not a number
    ("27–57 s and 25-64 s", [27, 57, 25, 64]),            # a range is two numbers, not a negative one
    ("lr 3e-3 at 1e-06, fp32, x20", [3e-3, 1e-06]),
    ("+0.04 ± 0.12: 635,065 tokens, 25.9%", [0.04, 0.12, 635065, 25.9]),
])
def test_printed_numbers(text, numbers):
    assert [n for _, n, _, _ in checker["printed_numbers"](text)] == pytest.approx(numbers)


def test_printed_precision_and_plus_minus():
    (_, value, half, pm), (_, sd, sd_half, _) = checker["printed_numbers"]("47.3 ± 21")
    assert (value, half, pm, sd, sd_half) == (47.3, 0.05, True, 21, 0.5)
    assert checker["printed_numbers"]("4.4e-4")[0][2] == pytest.approx(0.5e-5)


def test_prefix_groups_counts_images_sharing_their_prefix():
    tokens = torch.tensor([[0, 0, 5], [0, 0, 6], [0, 0, 7], [1, 2, 3], [1, 2, 4], [3, 3, 3]])
    groups = prefixes["prefix_groups"](tokens, prefix_len=2)
    assert groups == {"images": 6, "unique": 1, "shared": 5, "group_sizes": [3, 2], "largest_group_one_colour": True}


def test_the_paths_helper_reads_as_the_checker_and_fails_in_one_line(tmp_path):
    import json
    import subprocess
    import sys

    for seed, value in ((0, 0.5), (1, 0.75)):
        (tmp_path / f"s{seed}.json").write_text(json.dumps({"t": value}))
    (tmp_path / "rows.jsonl").write_text('{"event": "a", "v": 1}\n{"event": "b", "v": 2}\n')
    helper = [sys.executable, str(ROOT / "scripts" / "docs_numbers_paths.py")]
    run = lambda *args: subprocess.run([*helper, *args], cwd=tmp_path, capture_output=True, text=True)
    assert run("s*.json", "each */t").stdout.strip() == "[0.5, 0.75]"
    assert run("rows.jsonl", "[event=b]/v").stdout.strip() == "2"
    missing = run("gone.json", "t")
    assert missing.returncode == 1 and missing.stderr.strip() == "error: gone.json does not exist"
