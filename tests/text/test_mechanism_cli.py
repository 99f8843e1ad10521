"""`hyperfit text analyze` with the mechanism options (docs/mechanism.md), on tiny local models."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from hyperfit_core.cli import main
from tests.cli_outcome import assert_outcome


def run_cli(args, capsys) -> Path:
    capsys.readouterr()
    main(args)
    return Path(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def train_run(tiny_llama_dir, corpus_txt, tmp_path_factory):
    """A one-epoch hyperfitting run of the tiny Llama: its held-out prompts are what analyze scores."""
    out = tmp_path_factory.mktemp("runs")
    main(["text", "train", "--model", str(tiny_llama_dir), "--data", str(corpus_txt), "--num-train", "8",
          "--window", "48", "--num-eval", "4", "--context", "16", "--reference", "16", "--epochs", "1",
          "--lr", "3e-3", "--out", str(out)])
    (run,) = out.glob("*-text-train")
    return run


def scaled_head_copy(source: Path, dest: Path, factor: float) -> Path:
    """The model with its output head scaled: its logits are factor * the source's, i.e. the source at T=1/factor."""
    model = LlamaForCausalLM.from_pretrained(source)
    with torch.no_grad():
        model.lm_head.weight.mul_(factor)
    model.save_pretrained(dest)
    AutoTokenizer.from_pretrained(source).save_pretrained(dest)
    return dest


@pytest.fixture(scope="module")
def sharp_llama_dir(tiny_llama_dir, tmp_path_factory):
    return scaled_head_copy(tiny_llama_dir, tmp_path_factory.mktemp("sharp"), 3.0)


def test_match_entropy_finds_the_inverse_head_scale(train_run, tiny_llama_dir, sharp_llama_dir, tmp_path, capsys):
    run = run_cli(["text", "analyze", "--model", f"base={tiny_llama_dir}", "--model", f"hyperfitted={sharp_llama_dir}",
                   "--train-run", str(train_run), "--match-entropy", "--out", str(tmp_path)], capsys)
    match = json.loads((run / "entropy_match.json").read_text())
    summary = json.loads((run / "analysis.json").read_text())
    assert match["base"] == "base" and match["hyperfitted"] == "hyperfitted" and match["positions"] == 4 * 16
    assert match["hyperfitted_entropy_at_1"] == summary["hyperfitted"]["entropy_mean"]
    assert match["base_entropy_at_1"] == pytest.approx(summary["base"]["entropy_mean"], abs=1e-5)
    assert abs(match["entropy_at_temperature"] - match["hyperfitted_entropy_at_1"]) <= match["tolerance"]
    assert match["temperature"] < 1 and match["temperature"] == pytest.approx(1 / 3, rel=0.01)
    lo, hi = match["bracket"]
    assert lo <= match["temperature"] <= hi and match["iterations"] >= 1


def test_match_entropy_needs_two_models(train_run, tiny_llama_dir, tmp_path, capsys):
    assert_outcome(["text", "analyze", "--model", str(tiny_llama_dir), "--train-run", str(train_run),
                    "--match-entropy"], False, tmp_path / "runs", capsys)


def test_generate_samples_at_a_temperature_without_top_k_or_top_p(train_run, tiny_llama_dir, tmp_path, capsys):
    """The entropy-matched baseline is `generate --decoding sample --temperature T`: pure sampling at T."""
    run = run_cli(["text", "generate", "--model", str(tiny_llama_dir), "--train-run", str(train_run),
                   "--max-new-tokens", "4", "--decoding", "sample", "--temperature", "0.37", "--decode-seed", "3",
                   "--out", str(tmp_path)], capsys)
    decoding = json.loads((run / "config.json").read_text())["config"]["decoding"]
    assert decoding == {"strategy": "sample", "temperature": 0.37, "top_k": None, "top_p": None, "seed": 3}
