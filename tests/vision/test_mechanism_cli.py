"""`hyperfit vision analyze / complete` with the mechanism options (docs/mechanism.md), on a tiny ImageGPT."""

import json
from pathlib import Path

import pytest
import torch

from hyperfit_core.cli import main
from hyperfit_vision.model import load_imagegpt
from tests.cli_outcome import assert_outcome


def ok_cli(args, capsys) -> Path:
    capsys.readouterr()
    try:
        main(args)
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    return Path(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sharp_imagegpt_dir(tiny_imagegpt_dir, tmp_path_factory):
    """The tiny ImageGPT with its head scaled by 3: the base at T = 1/3."""
    image_model, _ = load_imagegpt(str(tiny_imagegpt_dir))
    with torch.no_grad():
        image_model.model.lm_head.weight.mul_(3.0)
    path = tmp_path_factory.mktemp("sharp-imagegpt")
    image_model.save(path)
    return path


def test_match_entropy_finds_the_inverse_head_scale(tiny_imagegpt_dir, sharp_imagegpt_dir, image_folder_8px,
                                                    tmp_path, capsys):
    run = ok_cli(["vision", "analyze", "--model", f"base={tiny_imagegpt_dir}", "--model",
                  f"hyperfitted={sharp_imagegpt_dir}", "--data", str(image_folder_8px), "--num-eval", "4",
                  "--match-entropy", "--out", str(tmp_path)], capsys)
    match = json.loads((run / "entropy_match.json").read_text())
    assert match["positions"] == 4 * (64 - 16)
    assert abs(match["entropy_at_temperature"] - match["hyperfitted_entropy_at_1"]) <= match["tolerance"]
    assert match["temperature"] == pytest.approx(1 / 3, rel=0.01)


def test_match_entropy_needs_two_models(tiny_imagegpt_dir, image_folder_8px, tmp_path, capsys):
    assert_outcome(["vision", "analyze", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px),
                    "--match-entropy"], False, tmp_path / "runs", capsys)


def test_complete_samples_at_a_temperature(tiny_imagegpt_dir, image_folder_8px, tmp_path, capsys):
    run = ok_cli(["vision", "complete", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px),
                  "--num-eval", "2", "--decoding", "sample", "--temperature", "0.37", "--out", str(tmp_path)], capsys)
    decoding = json.loads((run / "config.json").read_text())["config"]["decoding"]
    assert decoding["temperature"] == 0.37 and decoding["top_k"] is None and decoding["top_p"] is None
