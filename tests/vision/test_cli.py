"""The vision commands end to end on a tiny local model, and every bad input named in the brief."""

import json
from pathlib import Path

import pytest
from PIL import Image
from transformers import GPT2Config, GPT2LMHeadModel

from hyperfit_core.cli import main


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def ok_cli(args, capsys):
    try:
        main(args)
    except SystemExit as exc:  # click may exit 0 explicitly
        assert exc.code in (0, None), capsys.readouterr().err
    return capsys.readouterr()


def test_train_complete_grid_end_to_end(tiny_imagegpt_dir, image_folder_8px, tmp_path, capsys):
    out = ok_cli(["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px),
                  "--num-train", "8", "--epochs", "2", "--lr", "1e-3", "--out", str(tmp_path / "runs")], capsys)
    run = Path(out.out.strip().splitlines()[-1])
    assert (run / "model" / "model.safetensors").is_file()
    assert (run / "model" / "preprocessor_config.json").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["seed"] == 0 and config["versions"]["torch"]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics if m["event"] == "epoch"] == [1, 2]

    out = ok_cli(["vision", "complete", "--model", str(run / "model"), "--data", str(image_folder_8px),
                  "--num-eval", "4", "--blocker", "--blocker-n", "4", "--out", str(tmp_path / "runs")], capsys)
    complete_run = Path(out.out.strip().splitlines()[-1])
    grid = complete_run / "grid.png"
    with Image.open(grid) as image:
        assert image.width > 3 * 8 * 4 and image.height > 4 * 8 * 4
    record = [json.loads(line) for line in (complete_run / "metrics.jsonl").read_text().splitlines()][-1]
    assert record["blocker"]["n"] == 4 and record["prefix_rows"] == 2

    out = ok_cli(["vision", "grid", str(complete_run), "--png", str(tmp_path / "g.png")], capsys)
    assert (tmp_path / "g.png").is_file()


def test_resume_continues_a_run(tiny_imagegpt_dir, image_folder_8px, tmp_path, capsys):
    out = ok_cli(["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px),
                  "--num-train", "4", "--epochs", "1", "--out", str(tmp_path)], capsys)
    run = Path(out.out.strip().splitlines()[-1])
    ok_cli(["vision", "train", "--resume", str(run)], capsys)  # nothing left to do: same run, same result
    assert (run / "model" / "model.safetensors").is_file()


@pytest.fixture
def bad_folders(tmp_path, image_folder_8px):
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "broken.png").write_bytes(b"\x89PNG not really")
    wide = tmp_path / "wide"
    wide.mkdir()
    Image.new("RGB", (16, 8)).save(wide / "wide.png")
    dangling = tmp_path / "dangling"
    dangling.mkdir()
    for file in sorted(Path(image_folder_8px).glob("*.png"))[:3]:
        (dangling / file.name).write_bytes(file.read_bytes())
    (dangling / "zz.png").symlink_to(tmp_path / "gone.png")
    return {"empty": empty, "corrupt": corrupt, "wide": wide, "dangling": dangling}


@pytest.mark.parametrize("case, message", [
    ("missing", "image data not found"),
    ("empty", "no PNG or JPEG"),
    ("corrupt", "not a readable image"),
    ("wide", "must be square"),
    ("dangling", "zz.png: a symlink to a missing file"),
])
def test_bad_image_input(case, message, bad_folders, tiny_imagegpt_dir, tmp_path, capsys):
    folder = bad_folders.get(case, tmp_path / "does-not-exist")
    code, _, err = run_cli(["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", str(folder),
                            "--num-train", "1", "--crop", "none", "--out", str(tmp_path / "runs")], capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_not_an_imagegpt_model(tmp_path, image_folder_8px, capsys):
    GPT2LMHeadModel(GPT2Config(vocab_size=20, n_positions=16, n_embd=8, n_layer=1, n_head=1)).save_pretrained(tmp_path / "gpt2")
    code, _, err = run_cli(["vision", "train", "--model", str(tmp_path / "gpt2"), "--data", str(image_folder_8px),
                            "--num-train", "2", "--out", str(tmp_path / "runs")], capsys)
    assert code == 2 and "'gpt2' model, not ImageGPT" in err


def test_missing_model_folder(tmp_path, image_folder_8px, capsys):
    code, _, err = run_cli(["vision", "complete", "--model", str(tmp_path / "nope"), "--data", str(image_folder_8px),
                            "--out", str(tmp_path)], capsys)
    assert code == 2 and "model folder not found" in err


def test_more_prefix_than_image(tiny_imagegpt_dir, image_folder_8px, tmp_path, capsys):
    code, _, err = run_cli(["vision", "complete", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px),
                            "--prefix-fraction", "0.99", "--out", str(tmp_path / "runs")], capsys)
    assert code == 2 and "whole rows" in err
    assert not list((tmp_path / "runs").glob("*/*.completions.safetensors"))


def test_unwritable_output_dir(tiny_imagegpt_dir, image_folder_8px, capsys):
    # /proc refuses new folders even to root, which CI runs as
    code, _, err = run_cli(["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px),
                            "--num-train", "2", "--out", "/proc/hyperfit-runs"], capsys)
    assert code == 2 and "cannot write to output directory /proc/hyperfit-runs" in err


def test_output_path_that_is_a_file(tiny_imagegpt_dir, image_folder_8px, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px),
                            "--num-train", "2", "--out", str(blocker / "runs")], capsys)
    assert code == 2 and "cannot write to output directory" in err


def test_too_many_training_images(tiny_imagegpt_dir, image_folder_8px, tmp_path, capsys):
    code, _, err = run_cli(["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px),
                            "--out", str(tmp_path)], capsys)
    assert code == 2 and "asked for 2000 training images" in err


def test_analyze_reports_entropy_and_agreement(tiny_imagegpt_dir, image_folder_8px, tmp_path, capsys):
    out = ok_cli(["vision", "analyze", "--model", f"a={tiny_imagegpt_dir}", "--model", f"b={tiny_imagegpt_dir}",
                  "--data", str(image_folder_8px), "--num-eval", "4", "--out", str(tmp_path)], capsys)
    run = Path(out.out.strip().splitlines()[-1])
    report = json.loads((run / "analysis.json").read_text())
    assert set(report) == {"a", "b"} and report["a"]["positions"] == 4 * (64 - 16)
    assert report["a"]["entropy_mean"] == report["b"]["entropy_mean"]
    assert json.loads((run / "agreement.json").read_text())["top1_agreement"] == 1.0  # a model agrees with itself
    assert (run / "analysis.png").is_file()


def test_grid_columns_are_named_by_everything_before_the_suffix(tmp_path, monkeypatch, capsys):
    """sample-T1-p0.9 and sample-T1-p0.95 are two columns (the name was cut at its first dot: one column)."""
    import numpy as np

    import hyperfit_vision.grid
    from hyperfit_core.formats import write_completions

    for name in ("sample-T1-p0.9", "sample-T1-p0.95", "greedy"):
        write_completions(tmp_path / f"{name}.completions.safetensors", tokens=np.zeros((2, 16)),
                          real_tokens=np.zeros((2, 16)), source_index=np.arange(2), prefix_rows=1,
                          palette=np.zeros((3, 3)))
    seen = {}
    monkeypatch.setattr(hyperfit_vision.grid, "grid_from_completions",
                        lambda files, png, **kwargs: seen.update(files) or png)
    ok_cli(["vision", "grid", str(tmp_path), "--png", str(tmp_path / "g.png")], capsys)
    assert sorted(seen) == ["greedy", "sample-T1-p0.9", "sample-T1-p0.95"]


def test_grid_and_evaluate_take_the_out_folder_of_one_run(tmp_path, monkeypatch, capsys):
    """`complete --out OUT` writes OUT/<run dir>/NAME.completions.safetensors: OUT itself names that run (it was
    refused as holding no completion files); an OUT holding two runs is refused naming both, not one taken."""
    import numpy as np

    import hyperfit_vision.grid
    from hyperfit_core.formats import COMPLETIONS, condition_files_of, write_completions

    def one_run(folder, name):
        folder.mkdir(parents=True)
        write_completions(folder / f"{name}.{COMPLETIONS}", tokens=np.zeros((2, 16)), real_tokens=np.zeros((2, 16)),
                          source_index=np.arange(2), prefix_rows=1, palette=np.zeros((3, 3)))

    one_run(tmp_path / "out" / "20261202-1-vision-complete", "greedy")
    seen = {}
    monkeypatch.setattr(hyperfit_vision.grid, "grid_from_completions",
                        lambda files, png, **kwargs: seen.update(files) or png)
    ok_cli(["vision", "grid", str(tmp_path / "out"), "--png", str(tmp_path / "g.png")], capsys)
    assert seen == {"greedy": tmp_path / "out" / "20261202-1-vision-complete" / f"greedy.{COMPLETIONS}"}
    assert condition_files_of(tmp_path / "out", COMPLETIONS) == seen  # what evaluate and the blocker read

    one_run(tmp_path / "out" / "20261202-2-vision-complete", "top-p")
    code, out, err = run_cli(["vision", "grid", str(tmp_path / "out"), "--png", str(tmp_path / "h.png")], capsys)
    assert code == 2 and err.strip() == (f"error: {tmp_path / 'out'} holds 2 run dirs with NAME.{COMPLETIONS} files "
                                         "(20261202-1-vision-complete, 20261202-2-vision-complete): name the one meant")
    (tmp_path / "empty").mkdir()
    code, out, err = run_cli(["vision", "grid", str(tmp_path / "empty"), "--png", str(tmp_path / "h.png")], capsys)
    assert code == 2 and "is not a NAME.completions.safetensors file or a run dir holding some" in err
    assert not (tmp_path / "h.png").exists()
    for png, told in ((tmp_path / "grid.json", "is where a PNG would be written: name a .png file"),
                      (tmp_path / "out", "is a directory"),
                      (tmp_path / "gone" / "g.png", "does not exist")):
        code, out, err = run_cli(["vision", "grid", str(tmp_path / "empty"), "--png", str(png)], capsys)
        assert code == 2 and told in err and len(err.strip().splitlines()) == 1, err  # before the folder is read
