"""The text adapter's train options are one typed class (TextTrainOptions): its defaults are the `text train`
command's (declared once), generate's --gguf-file / --context come from the same declarations, and a config.json
written before the options were typed still reads, with generate --prompts-from reading it."""

import json

import pytest

from hyperfit_core.cli import main
from hyperfit_core.options import declarations
from hyperfit_core.recipe import TrainSpec, read_spec
from hyperfit_core.rundir import RunDir
from hyperfit_text.training import TextModality, TextTrainOptions

# the spec of a config.json as `hyperfit text train` wrote it before this change (options an untyped dict)
OLD_SPEC = json.loads("""{
  "data": {"source": "CORPUS", "text_field": "text"},
  "data_seed": null, "model": "MODEL", "num_train": 16,
  "options": {"context": 32, "gguf_file": null, "max_corpus_tokens": null, "num_eval": 6, "reference": 32,
              "window": 64},
  "train": {"batch_size": 8, "compile": "auto", "device": "auto", "disable_dropout": true, "epochs": 1,
            "grad_clip": null, "gradient_checkpointing": "auto", "keep_checkpoints": 1, "lora_rank": null, "lr": 1e-06,
            "lr_schedule": "constant", "max_steps": null, "order_seed": null, "per_device_batch_size": null,
            "precision": "auto", "progress": true, "report_to": "none", "save_every": 1, "seed": 0,
            "shuffle_swaps": 0, "target_loss": null, "train_layers": null, "warmup_steps": 0, "weight_decay": 0.0}
}""")


def _commands():
    from hyperfit_text.cli import text

    return {name: {p.name: p for p in command.params} for name, command in text.commands.items()}


def test_text_defaults_are_declared_once():
    commands = _commands()
    for name, opt in declarations(TextTrainOptions).items():
        param = commands["train"][name]
        assert (param.default, param.help, param.opts[0]) == (opt.default, opt.help, opt.flag_name)
    for name in ("gguf_file", "context"):  # generate reads the same file and cuts the same contexts
        assert commands["generate"][name].help == declarations(TextTrainOptions)[name].help
        assert commands["generate"][name].default == declarations(TextTrainOptions)[name].default


def test_an_existing_format_spec_reads_as_typed_options_and_writes_back_the_same():
    spec = TrainSpec.from_dict(OLD_SPEC)
    assert spec.typed_options(TextModality) == TextTrainOptions(window=64, num_eval=6, context=32, reference=32)
    assert spec.to_dict() == OLD_SPEC
    # a script's partial dict (scripts/data_influence.py passes one) gets the declared defaults for the rest
    partial = TrainSpec(model="m", data={}, options={"window": 64})
    assert partial.typed_options(TextModality) == TextTrainOptions(window=64)
    with pytest.raises(Exception, match="unknown TextTrainOptions field"):
        TrainSpec(model="m", data={}, options={"windw": 64}).typed_options(TextModality)


def test_a_bad_text_option_is_one_line_from_the_cli_and_from_python(capsys):
    with pytest.raises(Exception) as python:
        TrainSpec(model="m", data={}, options={"window": 0}).validate(TextModality)
    with pytest.raises(SystemExit) as exit_info:
        main(["text", "train", "--window", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (f"error: Invalid value for '--window': {python.value} "
                                       "(see hyperfit text train --help)\n")
    assert str(python.value) == "window must be at least 1, got 0"


def test_generate_prompts_from_reads_an_existing_format_config_json(tiny_llama_dir, corpus_txt, tmp_path, capsys):
    out = tmp_path / "runs"
    main(["text", "train", "--model", str(tiny_llama_dir), "--data", str(corpus_txt), "--num-train", "8",
          "--window", "32", "--num-eval", "4", "--context", "8", "--reference", "8", "--epochs", "1", "--out", str(out)])
    (run,) = out.glob("*-text-train")
    old = json.loads(json.dumps(OLD_SPEC).replace('"MODEL"', json.dumps(str(tiny_llama_dir)))
                     .replace('"CORPUS"', json.dumps(str(corpus_txt))))
    old["options"].update(window=32, num_eval=3, context=8, reference=8)  # 3: generate's count comes from here
    RunDir(run, create=False).write_config({"spec": old, "cli": None}, seed=0, command="text train")
    assert read_spec(run)[0].typed_options(TextModality).num_eval == 3
    capsys.readouterr()
    main(["text", "generate", "--model", str(run / "model"), "--train-run", str(run), "--prompts-from",
          str(corpus_txt), "--context", "8", "--max-new-tokens", "4", "--out", str(tmp_path / "gen")])
    generated = json.loads((next((tmp_path / "gen").iterdir()) / "config.json").read_text())
    assert generated["config"]["prompts"] == 3  # --num-eval all: the train run's held-out count
