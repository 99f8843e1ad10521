"""`vision train`'s options come from their declarations (TrainConfig, TrainSpec, VisionTrainOptions); a run dir
whose config.json was written before the options were typed still reads and resumes."""

import json

import pytest

from hyperfit_core.cli import main
from hyperfit_core.options import cli_names, declarations
from hyperfit_core.recipe import TrainSpec, read_spec
from hyperfit_core.rundir import RunDir
from hyperfit_core.train import TrainConfig
from hyperfit_vision.training import VisionModality, VisionTrainOptions, train_images
from tests.core.test_options import bad_value

# the spec of a config.json as `hyperfit vision train` wrote it before this change (options an untyped dict)
OLD_SPEC = json.loads("""{
  "data": {"crop": "center", "download": false, "image_column": null, "root": "data", "source": "IMAGES",
           "split": "train"},
  "data_seed": null, "model": "MODEL", "num_train": 4, "options": {"palette": null},
  "train": {"batch_size": 4, "compile": "auto", "device": "auto", "disable_dropout": true, "epochs": 1,
            "grad_clip": null, "gradient_checkpointing": "auto", "keep_checkpoints": 1, "lora_rank": null, "lr": 0.001,
            "lr_schedule": "constant", "max_steps": null, "order_seed": null, "per_device_batch_size": null,
            "precision": "auto", "progress": true, "report_to": "none", "save_every": 1, "seed": 0,
            "shuffle_swaps": 0, "target_loss": null, "train_layers": null, "warmup_steps": 0, "weight_decay": 0.0}
}""")
OLD_CLI = {"batch_size": 4, "compile": "auto", "crop": "center", "data_root": "data", "data_seed": None,
           "device": "auto", "download": False, "epochs": 1, "grad_clip": None, "gradient_checkpointing": "auto",
           "image_column": None, "keep_checkpoints": 1, "lora_rank": None, "lr": 0.001, "lr_schedule": "constant",
           "max_steps": None, "model": "MODEL", "num_train": 4, "order_seed": None, "out": "runs", "palette": None,
           "per_device_batch_size": None, "precision": "auto", "report_to": "none", "resume": None, "save_every": 1,
           "seed": 0, "shuffle_swaps": 0, "source": "IMAGES", "split": "train", "target_loss": None,
           "train_layers": None, "warmup_steps": 0, "weight_decay": 0.0}


def _vision_train():
    from hyperfit_vision.cli import vision

    return vision.commands["train"]


def test_vision_train_options_are_the_declared_ones():
    params = {p.name: p for p in _vision_train().params}
    declared = {**declarations(TrainConfig), **declarations(VisionTrainOptions),
                "num_train": declarations(TrainSpec)["num_train"], "data_seed": declarations(TrainSpec)["data_seed"]}
    for name in [*cli_names(TrainConfig), *cli_names(VisionTrainOptions), "num_train", "data_seed"]:
        assert params[name].default == declared[name].default and params[name].opts[0] == declared[name].flag_name
    # every option the old command had is still there, under its old name (config.json's "cli" record keys)
    assert set(OLD_CLI) <= set(params)


@pytest.mark.parametrize("name", cli_names(TrainConfig))
def test_the_command_line_says_what_validate_says(name, capsys):
    opt = declarations(TrainConfig)[name]
    value = bad_value(opt)
    with pytest.raises(Exception) as python:
        TrainConfig(**{name: value}).validate()
    with pytest.raises(SystemExit) as exit_info:
        main(["vision", "train", opt.flag_name, str(value)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (f"error: Invalid value for '{opt.flag_name}': {python.value} "
                                       "(see hyperfit vision train --help)\n")


def test_an_existing_format_config_json_still_reads_and_resumes(tiny_imagegpt_dir, image_folder_8px, tmp_path,
                                                                capsys):
    spec = TrainSpec(model=str(tiny_imagegpt_dir), data={"source": str(image_folder_8px)}, num_train=4,
                     train=TrainConfig(lr=1e-3, epochs=1, batch_size=4, progress=False))
    run = train_images(spec, at=tmp_path / "run")
    written = json.loads((run / "config.json").read_text())["config"]["spec"]
    assert written["options"] == {"palette": None}  # serialised as before: a plain dict
    assert set(written) == set(OLD_SPEC) and set(written["train"]) == set(OLD_SPEC["train"])
    # the run's config.json replaced by one in the old writer's exact format
    paths = {"MODEL": str(tiny_imagegpt_dir), "IMAGES": str(image_folder_8px)}
    old_spec = json.loads(json.dumps(OLD_SPEC).replace('"MODEL"', json.dumps(paths["MODEL"]))
                          .replace('"IMAGES"', json.dumps(paths["IMAGES"])))
    old_cli = {k: paths.get(v, v) if isinstance(v, str) else v for k, v in OLD_CLI.items()}
    RunDir(run.path, create=False).write_config({"cli": old_cli, "spec": old_spec, "palette": "image processor"},
                                                seed=0, command="vision train")
    read, _ = read_spec(run.path)
    assert read.typed_options(VisionModality) == VisionTrainOptions(palette=None)
    assert read.train == TrainConfig(**OLD_SPEC["train"])
    try:
        main(["vision", "train", "--resume", str(run.path), "--epochs", "2"])
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    epochs = [r["epoch"] for r in RunDir(run.path).read_metrics() if r["event"] == "epoch"]
    assert epochs == [1, 2]
    assert json.loads((run / "config.json").read_text())["config"]["spec"]["options"] == {"palette": None}
