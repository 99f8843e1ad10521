"""`hyperfit vision analyze / complete` with the mechanism options (docs/mechanism.md), on a tiny ImageGPT."""

import json

import pytest
import torch

from hyperfit_core.cli import main
from hyperfit_vision.model import load_imagegpt
from tests.cli_outcome import assert_outcome, ok_run


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
    run = ok_run(["vision", "analyze", "--model", f"base={tiny_imagegpt_dir}", "--model",
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
    run = ok_run(["vision", "complete", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px),
                  "--num-eval", "2", "--decoding", "sample", "--temperature", "0.37", "--out", str(tmp_path)], capsys)
    decoding = json.loads((run / "config.json").read_text())["config"]["decoding"]
    assert decoding["temperature"] == 0.37 and decoding["top_k"] is None and decoding["top_p"] is None


def test_ranks_and_logit_bias_on_images(tiny_imagegpt_dir, sharp_imagegpt_dir, image_folder_8px, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    data = ["--data", str(image_folder_8px), "--num-eval", "3"]
    done = ok_run(["vision", "complete", "--model", str(tiny_imagegpt_dir), *data, "--out", str(tmp_path)], capsys)
    bias_file = tmp_path / "bias.safetensors"
    run = ok_run(["vision", "analyze", "--model", f"base={tiny_imagegpt_dir}", "--model",
                  f"hyperfitted={sharp_imagegpt_dir}", *data, "--ranks", str(done), "--write-logit-bias",
                  str(bias_file), "--out", str(tmp_path / "a")], capsys)
    greedy = json.loads((run / "ranks.json").read_text())["conditions"]["greedy"]
    assert greedy["tokens"] == 3 * (64 - 16) and greedy["outside_top1"] == 0 and greedy["num_classes"] == 27
    assert load_file(str(bias_file))["logit_bias"].shape == (27,)  # one per colour: no SOS logit

    forced = torch.zeros(27)
    forced[4] = 1e4
    save_file({"logit_bias": forced}, str(tmp_path / "forced.safetensors"))
    run = ok_run(["vision", "complete", "--model", str(tiny_imagegpt_dir), *data, "--logit-bias",
                  str(tmp_path / "forced.safetensors"), "--out", str(tmp_path)], capsys)
    tokens = load_file(str(run / "greedy-logit-bias.completions.safetensors"))["tokens"]
    assert (tokens[:, 16:] == 4).all()
    save_file({"logit_bias": torch.zeros(28)}, str(tmp_path / "wrong.safetensors"))
    assert_outcome(["vision", "complete", "--model", str(tiny_imagegpt_dir), *data, "--logit-bias",
                    str(tmp_path / "wrong.safetensors")], False, tmp_path / "none", capsys)


def test_layers_and_swap_blocks_on_images(tiny_imagegpt_dir, image_folder_8px, tmp_path, capsys):
    from hyperfit_vision.model import build_imagegpt
    from safetensors.torch import load_file
    from tests.vision.conftest import grid_palette

    donor = tmp_path / "donor"
    build_imagegpt(8, grid_palette(), n_layer=2, n_embd=32, n_head=2, seed=1).save(donor)
    run = ok_run(["vision", "analyze", "--model", f"base={tiny_imagegpt_dir}", "--model", f"hyperfitted={donor}",
                  "--data", str(image_folder_8px), "--num-eval", "3", "--layers", "--out", str(tmp_path)], capsys)
    report = json.loads((run / "layers.json").read_text())
    assert [len(d) for d in report["effective_dimension"].values()] == [3, 3]
    assert all(report["relative_weight_change"][f"block.{i}"] > 0 for i in (0, 1))

    out = tmp_path / "swapped"
    ok_run(["vision", "swap-blocks", "--base", str(tiny_imagegpt_dir), "--donor", str(donor), "--last", "all",
            "--out", str(out)], capsys)
    swapped, base_w, donor_w = (load_file(str(p / "model.safetensors")) for p in (out, tiny_imagegpt_dir, donor))
    for key, value in swapped.items():
        assert torch.equal(value, (donor_w if key.startswith("transformer.h.") else base_w)[key]), key
    assert (out / "preprocessor_config.json").is_file()
    ok_run(["vision", "complete", "--model", str(out), "--data", str(image_folder_8px), "--num-eval", "2",
            "--out", str(tmp_path / "c")], capsys)
    small = tmp_path / "small"
    build_imagegpt(8, grid_palette(), n_layer=1, n_embd=32, n_head=2, seed=1).save(small)
    code = None
    try:
        main(["vision", "swap-blocks", "--base", str(tiny_imagegpt_dir), "--donor", str(small), "--last", "1",
              "--out", str(tmp_path / "bad")])
    except SystemExit as exc:
        code = exc.code
    assert code == 2 and "differ in shape" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_lora_on_the_last_block_of_imagegpt(tiny_imagegpt_dir, image_folder_8px, tmp_path, capsys):
    from safetensors.torch import load_file

    run = ok_run(["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px),
                  "--num-train", "4", "--epochs", "1", "--lr", "1e-2", "--lora", "2", "--train-layers", "last:1",
                  "--out", str(tmp_path)], capsys)
    base, saved = (load_file(str(p / "model.safetensors")) for p in (tiny_imagegpt_dir, run / "model"))
    assert set(saved) == set(base)
    changed = {k for k in base if not torch.equal(base[k], saved[k])}
    assert changed and all(k.startswith("transformer.h.1.") for k in changed)
