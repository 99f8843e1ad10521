"""Inputs as a new user gives them: convertible images, Hugging Face datasets, counts, resume, no network."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hyperfit_core.cli import main
from tests.cli_outcome import ok_run
from hyperfit_vision.data import ImageSource, load_image_folder


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def assert_one_line_error(code, err, message):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err


def test_cmyk_16bit_and_non_square_images_are_converted_and_reported(tmp_path):
    Image.new("CMYK", (8, 8), (10, 200, 30, 0)).save(tmp_path / "a.jpg")
    grey16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(grey16).save(tmp_path / "b.png")
    Image.new("RGB", (12, 8), (255, 0, 0)).save(tmp_path / "c.png")
    images = load_image_folder(tmp_path)
    assert images.images.shape == (3, 8, 8, 3)
    assert images.images[1, 0, 1, 0] == (1000 >> 8)  # 16 bits -> the top 8
    assert any("CMYK" in n for n in images.notes) and any("16-bit" in n for n in images.notes)
    assert any("centre-cropped" in n for n in images.notes)


def _hf_dataset(folder):
    import datasets

    files = sorted(Path(folder).glob("*.png"))
    return datasets.Dataset.from_dict({"img": [str(f) for f in files], "label": list(range(len(files)))}) \
        .cast_column("img", datasets.Image())


def test_hugging_face_datasets_save_to_disk_and_parquet(image_folder_8px, tmp_path):
    data = _hf_dataset(image_folder_8px)
    data.save_to_disk(str(tmp_path / "saved"))
    data.to_parquet(str(tmp_path / "images.parquet"))
    folder = load_image_folder(image_folder_8px)
    for source in (tmp_path / "saved", tmp_path / "images.parquet"):
        loaded = ImageSource(str(source)).load()
        assert loaded.images.shape == folder.images.shape
        assert np.array_equal(loaded.images.numpy(), folder.images.numpy())


def test_image_column_is_checked(image_folder_8px, tmp_path, tiny_imagegpt_dir, capsys):
    _hf_dataset(image_folder_8px).save_to_disk(str(tmp_path / "saved"))
    capsys.readouterr()  # the test's own saving progress
    code, _, err = run_cli(["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", str(tmp_path / "saved"),
                            "--image-column", "photo", "--num-train", "2", "--out", str(tmp_path / "runs")], capsys)
    assert_one_line_error(code, err, "no column 'photo'")
    assert not (tmp_path / "runs").exists()


def test_an_unreachable_hub_dataset_is_one_line(tiny_imagegpt_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_cli(["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", "uoft-cs/cifar10",
                            "--num-train", "2", "--out", str(tmp_path / "runs")], capsys)
    assert_one_line_error(code, err, "cannot load dataset 'uoft-cs/cifar10'")


def test_download_without_a_network_is_one_line(tiny_imagegpt_dir, tmp_path, capsys, monkeypatch):
    import urllib.error

    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    code, _, err = run_cli(["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", "cifar10", "--download",
                            "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "runs")], capsys)
    assert_one_line_error(code, err, "downloading cifar10 failed")
    assert "--data-root" in err and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, message", [
    (["--num-train", "-3"], "'--num-train': number of training items must be at least 1, got -3"),
    (["--epochs", "0"], "'--epochs': epochs must be at least 1, got 0"),
    (["--batch-size", "0"], "'--batch-size': batch size must be at least 1, got 0"),
    (["--lr", "0"], "'--lr'"),
    (["--num-train", "13"], "asked for 13 training images but the data holds only 12"),
    (["--per-device-batch-size", "3"], "global batch 8 is not a multiple of per-device batch 3"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--train-layers", "first:2"], "--train-layers must look like last:K"),
    (["--lr-schedule", "step"], "'--lr-schedule': unknown learning-rate schedule 'step': use constant, linear or cosine"),
    (["--warmup-steps", "-1"], "'--warmup-steps': warm-up steps must not be negative, got -1"),
    (["--grad-clip", "0"], "'--grad-clip'"),
])
def test_bad_train_counts_exit_2_before_writing(args, message, tiny_imagegpt_dir, image_folder_8px, tmp_path, capsys):
    code, _, err = run_cli(["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px),
                            "--out", str(tmp_path / "runs"), *(["--num-train", "2"] if "--num-train" not in args else []),
                            *args], capsys)
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "runs").exists()


def test_more_held_out_images_than_exist_names_both_counts(tiny_imagegpt_dir, image_folder_8px, tmp_path, capsys):
    base = ["vision", "complete", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px),
            "--out", str(tmp_path / "runs")]
    code, _, err = run_cli([*base, "--num-eval", "25"], capsys)
    assert_one_line_error(code, err, "asked for 25 images but the data holds 12; pass --num-eval all")
    code, _, err = run_cli([*base, "--num-eval", "0"], capsys)
    assert_one_line_error(code, err, "must be at least 1")
    assert not (tmp_path / "runs").exists()
    run = ok_run([*base, "--num-eval", "all"], capsys)
    assert json.loads((run / "config.json").read_text())["config"]["num_eval"] == 12


def test_resume_refuses_conflicting_options_and_reloads_saved_tokens(tiny_imagegpt_dir, image_folder_8px, tmp_path,
                                                                     capsys):
    import shutil

    images = tmp_path / "images"
    shutil.copytree(image_folder_8px, images)
    run = ok_run(["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", str(images),
                  "--num-train", "4", "--epochs", "1", "--lr", "1e-3", "--out", str(tmp_path / "runs")], capsys)
    code, _, err = run_cli(["vision", "train", "--resume", str(run), "--lr", "1e-2", "--batch-size", "2"], capsys)
    assert_one_line_error(code, err, "--lr 0.01 (the run has 0.001)")
    assert "--batch-size 2 (the run has 8)" in err
    # the same value as saved is no conflict, --device may change, and the saved tokens are used: the images
    # need not exist any more
    shutil.rmtree(images)
    assert ok_run(["vision", "train", "--resume", str(run), "--lr", "1e-3", "--device", "cpu"], capsys) == run


def test_resume_with_a_larger_max_steps_lengthens_a_run_stopped_by_its_budget(tiny_imagegpt_dir, image_folder_8px,
                                                                              tmp_path, capsys):
    from hyperfit_core.recipe import read_spec
    from hyperfit_core.rundir import RunDir

    run = ok_run(["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px),
                  "--num-train", "8", "--batch-size", "2", "--epochs", "2", "--lr", "1e-3", "--max-steps", "1",
                  "--out", str(tmp_path / "runs")], capsys)
    assert ok_run(["vision", "train", "--resume", str(run), "--max-steps", "3"], capsys) == run
    assert [r["step"] for r in RunDir(run).read_metrics() if r["event"] == "step"] == [1, 2, 3]
    spec, record = read_spec(run)
    assert spec.train.max_steps == 3 and record["config"]["cli"]["max_steps"] == 3
    # lengthening is the only change: what the run computes still may not
    code, _, err = run_cli(["vision", "train", "--resume", str(run), "--max-steps", "4", "--lr", "1e-2"], capsys)
    assert_one_line_error(code, err, "--lr 0.01 (the run has 0.001)")


def test_a_finished_run_can_be_lengthened_from_python_and_the_change_is_recorded(tiny_imagegpt_dir,
                                                                                 image_folder_8px, tmp_path):
    from hyperfit_core.errors import HyperfitError
    from hyperfit_core.recipe import TrainSpec, read_spec
    from hyperfit_core.rundir import RunDir
    from hyperfit_core.train import TrainConfig
    from hyperfit_vision.training import train_images

    spec = TrainSpec(model=str(tiny_imagegpt_dir), data={"source": str(image_folder_8px)}, num_train=4,
                     train=TrainConfig(lr=1e-3, epochs=1, batch_size=4, progress=False))
    run = train_images(spec, at=tmp_path / "run")
    with pytest.raises(HyperfitError, match="only be lengthened"):
        train_images(None, resume=run.path, extend={"lr": 1.0})
    train_images(None, resume=run.path, extend={"epochs": 3})
    epochs = [r["epoch"] for r in RunDir(run.path).read_metrics() if r["event"] == "epoch"]
    assert epochs == [1, 2, 3]
    assert read_spec(run.path)[0].train.epochs == 3
    assert any(r["event"] == "schedule_extended" for r in RunDir(run.path).read_metrics())


def test_a_decaying_schedule_cannot_be_lengthened_but_can_get_a_loss_target(tiny_imagegpt_dir, image_folder_8px,
                                                                             tmp_path):
    from hyperfit_core.errors import HyperfitError
    from hyperfit_core.recipe import TrainSpec
    from hyperfit_core.train import TrainConfig
    from hyperfit_vision.training import train_images

    spec = TrainSpec(model=str(tiny_imagegpt_dir), data={"source": str(image_folder_8px)}, num_train=4,
                     train=TrainConfig(lr=1e-3, epochs=1, batch_size=4, progress=False, lr_schedule="cosine"))
    run = train_images(spec, at=tmp_path / "run")
    with pytest.raises(HyperfitError, match="cosine learning-rate schedule ends at its planned last step"):
        train_images(None, resume=run.path, extend={"epochs": 3})
    train_images(None, resume=run.path, extend={"epochs": 1, "target_loss": 0.5})  # same length: allowed


def test_schedule_and_clipping_options_reach_the_loop_and_the_run_record(tiny_imagegpt_dir, image_folder_8px,
                                                                        tmp_path, capsys):
    from hyperfit_core.recipe import read_spec
    from hyperfit_core.rundir import RunDir

    run = ok_run(["vision", "train", "--model", str(tiny_imagegpt_dir), "--data", str(image_folder_8px),
                  "--num-train", "8", "--batch-size", "2", "--epochs", "2", "--lr", "1e-3", "--lr-schedule", "cosine",
                  "--warmup-steps", "2", "--grad-clip", "1.0", "--out", str(tmp_path / "runs")], capsys)
    train = read_spec(run)[0].train
    assert (train.lr_schedule, train.warmup_steps, train.grad_clip) == ("cosine", 2, 1.0)
    lrs = [r["lr"] for r in RunDir(run).read_metrics() if r["event"] == "step"]
    assert lrs == pytest.approx([train.lr_at(s, 8) for s in range(8)])
    assert lrs[0] == pytest.approx(5e-4) and lrs[1] == pytest.approx(1e-3) and lrs[-1] < 1e-4
    # resuming with the same schedule is no conflict; a different one is named
    code, _, err = run_cli(["vision", "train", "--resume", str(run), "--lr-schedule", "linear"], capsys)
    assert_one_line_error(code, err, "--lr-schedule linear (the run has cosine)")
