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


def test_ranks_of_the_bases_own_greedy_tokens_are_0(train_run, tiny_llama_dir, sharp_llama_dir, tmp_path, capsys):
    gen = run_cli(["text", "generate", "--model", str(tiny_llama_dir), "--train-run", str(train_run),
                   "--max-new-tokens", "8", "--out", str(tmp_path)], capsys)
    sampled = run_cli(["text", "generate", "--model", str(tiny_llama_dir), "--train-run", str(train_run),
                       "--max-new-tokens", "8", "--decoding", "sample", "--temperature", "3", "--out",
                       str(tmp_path)], capsys)
    run = run_cli(["text", "analyze", "--model", f"base={tiny_llama_dir}", "--train-run", str(train_run),
                   "--ranks", str(gen), "--out", str(tmp_path / "a")], capsys)
    report = json.loads((run / "ranks.json").read_text())
    greedy = report["conditions"]["greedy"]
    assert report["model"] == "base" and greedy["tokens"] == 4 * 8
    assert greedy["outside_top1"] == 0 and greedy["histogram"]["counts"][0] == 32
    assert (run / "ranks.png").is_file()
    run = run_cli(["text", "analyze", "--model", f"base={tiny_llama_dir}", "--train-run", str(train_run),
                   "--ranks", str(sampled), "--out", str(tmp_path / "b")], capsys)
    assert json.loads((run / "ranks.json").read_text())["conditions"]["sample-T3"]["outside_top1"] > 0


def test_logit_bias_is_written_by_analyze_and_applied_by_generate(train_run, tiny_llama_dir, sharp_llama_dir,
                                                                  tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    bias_file = tmp_path / "bias.safetensors"
    run_cli(["text", "analyze", "--model", f"base={tiny_llama_dir}", "--model", f"hyperfitted={sharp_llama_dir}",
             "--train-run", str(train_run), "--write-logit-bias", str(bias_file), "--out", str(tmp_path)], capsys)
    vocab = LlamaForCausalLM.from_pretrained(tiny_llama_dir).config.vocab_size
    assert load_file(str(bias_file))["logit_bias"].shape == (vocab,)
    gen = ["text", "generate", "--model", str(tiny_llama_dir), "--train-run", str(train_run), "--max-new-tokens", "6"]
    run = run_cli([*gen, "--logit-bias", str(bias_file), "--out", str(tmp_path)], capsys)
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["name"] == "greedy-logit-bias" and config["logit_bias"] == str(bias_file)

    forced = torch.zeros(vocab)
    forced[9] = 1e4
    save_file({"logit_bias": forced}, str(tmp_path / "forced.safetensors"))
    run = run_cli([*gen, "--logit-bias", str(tmp_path / "forced.safetensors"), "--out", str(tmp_path)], capsys)
    assert (load_file(str(run / "greedy-logit-bias.generations.safetensors"))["generated"] == 9).all()

    save_file({"logit_bias": torch.zeros(vocab + 1)}, str(tmp_path / "wrong.safetensors"))
    assert_outcome([*gen, "--logit-bias", str(tmp_path / "wrong.safetensors")], False, tmp_path / "none", capsys)
    assert_outcome(["text", "analyze", "--model", str(tiny_llama_dir), "--train-run", str(train_run),
                    "--write-logit-bias", str(tmp_path / "x.safetensors")], False, tmp_path / "none", capsys)


def test_layers_and_swap_blocks(train_run, tiny_llama_dir, tmp_path, capsys):
    from safetensors.torch import load_file

    donor = train_run / "model"
    run = run_cli(["text", "analyze", "--model", f"base={tiny_llama_dir}", "--model", f"hyperfitted={donor}",
                   "--train-run", str(train_run), "--layers", "--out", str(tmp_path)], capsys)
    report = json.loads((run / "layers.json").read_text())
    assert [len(d) for d in report["effective_dimension"].values()] == [3, 3]  # embeddings + 2 blocks
    assert set(report["relative_weight_change"]) == {"block.0", "block.1", "embeddings", "head", "other"}
    assert report["relative_weight_change"]["block.1"] > 0 and (run / "layers.png").is_file()

    out = tmp_path / "swapped"
    assert run_cli(["text", "swap-blocks", "--base", str(tiny_llama_dir), "--donor", str(donor), "--last", "1",
                    "--out", str(out)], capsys) == out
    swapped, base_w, donor_w = (load_file(str(p / "model.safetensors")) for p in (out, tiny_llama_dir, donor))
    for key, value in swapped.items():
        assert torch.equal(value, (donor_w if key.startswith("model.layers.1.") else base_w)[key]), key
    assert json.loads((out / "swap_blocks.json").read_text())["blocks_from_donor"] == [1]
    gen = run_cli(["text", "generate", "--model", str(out), "--train-run", str(train_run), "--max-new-tokens", "4",
                   "--out", str(tmp_path / "gen")], capsys)  # decoded like any model folder
    assert (gen / "greedy.generations.safetensors").is_file()
    for last in ("0", "3"):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(["text", "swap-blocks", "--base", str(tiny_llama_dir), "--donor", str(donor), "--last", last,
                  "--out", str(tmp_path / f"k{last}")])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and err[-1].startswith("error: --last must be between 1 and 2")
        assert not (tmp_path / f"k{last}").exists()
