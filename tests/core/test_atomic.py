"""Files a run writes get the permission bits the umask gives any new file, safetensors files too: safetensors >= 0.8
writes every file 0600 (safetensors#782), which left a run dir's weights, completions and features unreadable to a
lab's group or a container's other user while its config.json beside them was readable."""

import os
import stat
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hyperfit_core.atomic import atomic_dir, atomic_path, open_as_umask, umask_file_mode, write_text


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def bits(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_a_safetensors_file_gets_the_umask_bits_like_a_text_file(tmp_path, mask, expected):
    with umask(mask):
        assert umask_file_mode() == expected
        with atomic_path(tmp_path / "x.safetensors") as tmp:
            save_file({"a": torch.zeros(2)}, str(tmp))
        write_text(tmp_path / "config.json", "{}\n")
    assert bits(tmp_path / "x.safetensors") == bits(tmp_path / "config.json") == expected


def test_a_saved_model_folder_is_readable_like_its_config(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=16, n_positions=8, n_embd=8, n_layer=1, n_head=1))
    with umask(0o022):
        with atomic_dir(tmp_path / "model") as tmp:
            model.save_pretrained(tmp)
    files = {p.name: bits(p) for p in (tmp_path / "model").iterdir()}
    assert files["model.safetensors"] == files["config.json"] == 0o644, files


def test_only_fewer_bits_are_widened(tmp_path):
    script, private = tmp_path / "run.sh", tmp_path / "private.txt"
    script.write_text("#!/bin/sh\n")
    private.write_text("x")
    os.chmod(script, 0o755)
    os.chmod(private, 0o600)
    with umask(0o077):  # a user who wants their files private keeps them so
        open_as_umask(tmp_path)
    assert (bits(script), bits(private)) == (0o755, 0o600)
    with umask(0o022):
        open_as_umask(tmp_path)
    assert (bits(script), bits(private)) == (0o755, 0o644)


def test_a_checkpoint_is_readable_like_the_run_dir(tmp_path):
    from accelerate import Accelerator

    from hyperfit_core.checkpoint import save_checkpoint

    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(torch.nn.Linear(2, 2))
    assert model is not None
    with umask(0o022):
        saved = save_checkpoint(accelerator, tmp_path, {"step": 3}, keep=1)
    weights = [p for p in saved.rglob("*.safetensors")]
    assert weights and all(bits(p) == 0o644 for p in weights), {p.name: oct(bits(p)) for p in weights}
