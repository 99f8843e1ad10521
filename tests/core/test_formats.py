"""hyperfit_core.formats: JSON lines split at "\\n" only (a generation may hold U+2028 or U+0085), torch-free."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
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


# ---------------------------------------------------------------- run files -----------------------------------

def _old_completion_tensors(n=3, side=4, k=5, seed=0):
    """What `vision complete` wrote before hyperfit_core.formats held the format (safetensors.torch)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return {"tokens": torch.randint(0, k, (n, side * side), generator=g),
            "real_tokens": torch.randint(0, k, (n, side * side), generator=g),
            "source_index": torch.arange(10, 10 + n), "prefix_rows": torch.tensor(1),
            "palette": torch.rand(k, 3, generator=g) * 255}


def test_completions_are_written_byte_for_byte_as_before_and_old_files_read(tmp_path):
    from safetensors.torch import save_file

    from hyperfit_core.formats import read_completions, write_completions

    old = _old_completion_tensors()
    save_file(old, str(tmp_path / "old.completions.safetensors"))
    write_completions(tmp_path / "new.completions.safetensors", tokens=old["tokens"].numpy(),
                      real_tokens=old["real_tokens"].numpy(), source_index=old["source_index"].numpy(),
                      prefix_rows=1, palette=old["palette"].numpy())
    assert (tmp_path / "old.completions.safetensors").read_bytes() == \
        (tmp_path / "new.completions.safetensors").read_bytes()
    data = read_completions(tmp_path / "old.completions.safetensors")
    assert data["prefix_rows"] == 1 and data["source_index"].tolist() == [10, 11, 12]
    assert (data["tokens"] == old["tokens"].numpy()).all() and data["palette"].shape == (5, 3)


@pytest.mark.parametrize("change, message", [
    ({"palette": None}, "is not a completions file (missing palette)"),
    ({"tokens": np.zeros((3, 15), dtype=np.int64)}, "are not square images"),
    ({"tokens": np.full((3, 16), 5, dtype=np.int64)}, "tokens must be palette indices in [0, 5)"),
    ({"palette": np.zeros((5, 4), dtype=np.float32)}, "palette must be k x 3"),
])
def test_a_broken_completions_file_is_one_error(tmp_path, change, message):
    from safetensors.numpy import save_file

    from hyperfit_core.formats import read_completions

    arrays = {k: v.numpy() for k, v in _old_completion_tensors().items()}
    arrays.update(change)
    save_file({k: v for k, v in arrays.items() if v is not None}, str(tmp_path / "x.completions.safetensors"))
    with pytest.raises(HyperfitError, match=re.escape(message)):
        read_completions(tmp_path / "x.completions.safetensors")
    (tmp_path / "cut.completions.safetensors").write_bytes(b"\x08\x00")
    with pytest.raises(HyperfitError, match="cannot read completions"):
        read_completions(tmp_path / "cut.completions.safetensors")


def test_tokens_decode_with_the_palette_rounded_half_to_even_and_clipped():
    from hyperfit_core.formats import palette_rgb, tokens_to_rgb

    palette = np.array([[0.5, 1.5, 2.5], [254.5, 255.7, -3.0], [127.49, 127.5, 128.5]], dtype=np.float32)
    assert palette_rgb(palette).tolist() == [[0, 2, 2], [254, 255, 0], [127, 128, 128]]
    assert tokens_to_rgb(np.array([[2, 0, 1, 1]]), palette, 2)[0, 0].tolist() == [[127, 128, 128], [0, 2, 2]]
    with pytest.raises(HyperfitError, match=r"token ids must lie in \[0, 3\)"):
        tokens_to_rgb(np.array([[0, 3, 1, 1]]), palette, 2)
    with pytest.raises(HyperfitError, match=r"expected \(N, 4\) pixel tokens"):
        tokens_to_rgb(np.zeros((1, 5), dtype=np.int64), palette, 2)


def test_condition_files_and_names_keep_dots_in_names(tmp_path):
    from hyperfit_core.formats import COMPLETIONS, condition_file, condition_files, condition_name

    for name in ("greedy", "sample-T1-p0.9", "sample-T1-p0.95"):
        condition_file(tmp_path, name, COMPLETIONS).write_bytes(b"")
    (tmp_path / "greedy.inception.safetensors").write_bytes(b"")
    assert [condition_name(f, COMPLETIONS) for f in condition_files(tmp_path, COMPLETIONS)] == \
        ["greedy", "sample-T1-p0.9", "sample-T1-p0.95"]
    with pytest.raises(HyperfitError, match="is not a"):
        condition_name(tmp_path / "greedy.inception.safetensors", COMPLETIONS)


def test_the_run_config_reader_says_what_is_wrong(tmp_path):
    from hyperfit_core.formats import read_run_config

    with pytest.raises(HyperfitError, match=r"is not a run dir \(no config.json\)"):
        read_run_config(tmp_path)
    for text in ("{", "[1, 2]"):
        (tmp_path / "config.json").write_text(text)
        with pytest.raises(HyperfitError, match="cannot read"):
            read_run_config(tmp_path)
    (tmp_path / "config.json").write_text('{"command": "text generate"}')
    assert read_run_config(tmp_path) == {"command": "text generate"}



def test_json_files_the_stats_and_resume_read_are_one_error_line_when_broken(tmp_path):
    from hyperfit_core.checkpoint import read_state
    from hyperfit_core.formats import read_analysis_summary

    analysis = tmp_path / "analysis.json"
    for text, said in (("{", "cannot read .*analysis.json: Expecting"), ("[]", "not a JSON object"),
                       ('{"base": {"entropy_mean": 1.0}}', "a model's numbers lack 'perplexity'")):
        analysis.write_text(text)
        with pytest.raises(HyperfitError, match=said):
            read_analysis_summary(analysis)
    with pytest.raises(HyperfitError, match="cannot read .*analysis.json: No such file or directory"):
        read_analysis_summary(tmp_path / "missing" / "analysis.json")
    (tmp_path / "state.json").write_text('{"step": 3')  # a checkpoint's state cut short
    with pytest.raises(HyperfitError, match="cannot read .*state.json"):
        read_state(tmp_path)

def test_metrics_lines_are_written_as_before(tmp_path):
    """RunDir.log's lines: json.dumps(record, default=float) (ASCII escapes), one a line, appended."""
    import torch

    from hyperfit_core.rundir import RunDir

    records = [{"event": "step", "loss": torch.tensor(0.25).item(), "name": "café\u2028"}, {"lr": np.float32(0.5)}]
    run = RunDir(tmp_path / "run")
    for record in records:
        run.log(record)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == \
        "".join(json.dumps(r, default=float) + "\n" for r in records)
    assert run.read_metrics() == [records[0], {"lr": 0.5}]


def test_the_model_config_name_is_transformers_own():
    from transformers.utils import CONFIG_NAME

    from hyperfit_core.formats import MODEL_CONFIG

    assert MODEL_CONFIG == CONFIG_NAME
