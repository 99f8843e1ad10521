"""The one recipe's pieces: seeded selection, the output-dir check that leaves nothing behind, and run dirs
that only the main process writes."""

import pytest
import torch

from hyperfit_core.atomic import checked_out_dir
from hyperfit_core.errors import HyperfitError
from hyperfit_core.recipe import read_spec, select_items
from hyperfit_core.rundir import RunDir


def test_selection_is_seeded_distinct_and_checked():
    a, b = select_items(30, 10, seed=1), select_items(30, 10, seed=1)
    assert torch.equal(a, b) and len(set(a.tolist())) == 10 and max(a.tolist()) < 30
    assert not torch.equal(a, select_items(30, 10, seed=2))
    with pytest.raises(HyperfitError, match="asked for 31 training images but the data holds only 30"):
        select_items(30, 31, seed=0, what="training images")
    with pytest.raises(HyperfitError, match="at least 1"):
        select_items(30, 0, seed=0)


def test_checked_out_dir_removes_what_it_made_when_the_block_fails(tmp_path):
    with pytest.raises(HyperfitError):
        with checked_out_dir(tmp_path / "a" / "b"):
            raise HyperfitError("bad input")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    with pytest.raises(HyperfitError):
        with checked_out_dir(tmp_path / "kept"):
            raise HyperfitError("bad input")
    assert (tmp_path / "kept").is_dir()  # it existed before: never removed
    with checked_out_dir(tmp_path / "new") as path:
        assert path.is_dir()
    assert (tmp_path / "new").is_dir()


def test_read_spec_names_what_is_missing(tmp_path):
    with pytest.raises(HyperfitError, match="not a run dir"):
        read_spec(tmp_path)
    RunDir(tmp_path / "other").write_config({"model": "x"})
    with pytest.raises(HyperfitError, match="not a train run"):
        read_spec(tmp_path / "other")


def test_only_the_main_process_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    run = RunDir(tmp_path / "run")
    run.write_config({"a": 1})
    run.log({"event": "x"})
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv("RANK", "0")
    run = RunDir(tmp_path / "run")
    run.log({"event": "x"})
    assert run.read_metrics() == [{"event": "x"}]
