"""`hyperfit text train -> generate -> evaluate` end to end through the root CLI, and its input errors."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hyperfit_core import metric_registry as registry
from hyperfit_core.cli import main
from hyperfit_core.formats import read_jsonl
from hyperfit_core.sequences import TokenSequences
from hyperfit_text.splits import HeldOut

SMALL = ["--num-train", "16", "--window", "64", "--num-eval", "6", "--context", "32", "--reference", "32"]


def run_cli(args, capsys) -> Path:
    """Run a successful command; its last stdout line is the run dir."""
    capsys.readouterr()
    main(args)
    return Path(capsys.readouterr().out.strip().splitlines()[-1])


def fails(args, capsys, out: Path, message: str | tuple[str, ...]) -> None:
    """A bad input: `error: ...` on stderr (holding `message`, or each of several), exit status 2, and no run
    dir left behind."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    last = err.strip().splitlines()[-1]  # progress bars of model loading may come first
    messages = (message,) if isinstance(message, str) else message
    assert last.startswith("error: ") and all(part in last for part in messages), err
    assert not out.exists() or not any(out.iterdir())


@pytest.fixture(scope="module")
def llama_train_run(tiny_llama_dir, corpus_txt, tmp_path_factory):
    """One hyperfitted tiny Llama, shared by the tests below (capsys is per test, so find the run by name)."""
    out = tmp_path_factory.mktemp("runs")
    main(["text", "train", "--model", str(tiny_llama_dir), "--data", str(corpus_txt), *SMALL,
          "--epochs", "4", "--lr", "3e-3", "--out", str(out)])
    (run,) = out.glob("*-text-train")
    return run


def test_train_writes_windows_prompts_and_model(llama_train_run, tiny_llama_dir):
    run = llama_train_run
    train = TokenSequences.load(run / "train_tokens.safetensors")
    held, _ = HeldOut.load(run / "prompts.safetensors")
    config = json.loads((run / "config.json").read_text())["config"]
    bos = config["tokenizer"]["bos_id"]
    assert config["tokenizer"]["tokenizer_adds_bos"] is True
    assert train.ids.shape == (16, 65) and (train.ids[:, 0] == bos).all() and not (train.ids[:, 1:] == bos).any()
    assert held.contexts.shape == (6, 32) and held.references.shape == (6, 32)
    windows = {int(s) + i for s in train.source_index for i in range(64)}
    prompts = {int(s) + i for s in held.starts for i in range(64)}
    assert not windows & prompts
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= {p.name for p in (run / "model").iterdir()}
    epochs = [r["mean_loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
              if r["event"] == "epoch"]
    assert len(epochs) == 4 and epochs[-1] < epochs[0]


def test_generate_and_evaluate_end_to_end(llama_train_run, tiny_llama_dir, tmp_path, capsys):
    out = tmp_path / "runs"
    model = str(llama_train_run / "model")
    greedy = run_cli(["text", "generate", "--model", model, "--max-new-tokens", "40", "--out", str(out)], capsys)
    blocked = run_cli(["text", "generate", "--model", model, "--max-new-tokens", "40", "--blocker",
                       "--blocker-n", "3", "--out", str(out)], capsys)
    base = run_cli(["text", "generate", "--model", str(tiny_llama_dir), "--train-run", str(llama_train_run),
                    "--max-new-tokens", "40", "--decoding", "top-p", "--num-eval", "4", "--out", str(out)], capsys)

    tensors = load_file(str(greedy / "greedy.generations.safetensors"))
    assert tensors["generated"].shape == (6, 40) and tensors["contexts"].shape == (6, 32)
    rows = read_jsonl(greedy / "greedy.generations.jsonl")
    assert len(rows) == 6 and set(rows[0]) == {"index", "context", "continuation", "reference", "display", "tokens",
                                               "special_tokens"}
    assert rows[0]["tokens"]["continuation"] == 40
    assert load_file(str(base / "sample-T0.7-k50-p0.9.generations.safetensors"))["generated"].shape == (4, 40)
    blocker = [json.loads(line) for line in (blocked / "metrics.jsonl").read_text().splitlines()][-1]["blocker"]
    assert blocker["n"] == 3 and blocker["steps"] == 6 * 40
    # the blocker changed greedy's output exactly when it banned a token greedy would have picked
    blocked_tokens = load_file(str(blocked / "greedy-blocked3.generations.safetensors"))["generated"]
    assert blocker["steps_with_ban"] >= blocker["steps_top1_banned"]
    assert (blocker["steps_top1_banned"] == 0) == torch.equal(blocked_tokens, tensors["generated"])

    evaluation = run_cli(["text", "evaluate", str(greedy), str(blocked), str(base), "--out", str(out)], capsys)
    results = json.loads((evaluation / "results.json").read_text())
    assert set(results["runs"]) == {"greedy", "greedy-blocked3", "sample-T0.7-k50-p0.9"}
    entry = results["runs"]["greedy"]
    for key in ("type_token_ratio", "word_type_token_ratio", "self_bleu4", "dataset_bleu4", "seq_rep_4"):
        assert 0.0 <= entry[key] <= 1.0, key
    assert entry["count"] == 6 and entry["analysis"]["positions"] == 6 * 32 and entry["overlap_max_span"] >= 0
    # every key written is a registered metric or field (hyperfit_core/metric_list.py), as is every length-curve
    # and analysis key; per_item.json holds one value per prompt of each per-item metric, in prompt order
    for record in [*results["runs"].values(), results["human_reference"]]:
        assert registry.written_keys(record) == []
        assert registry.written_keys(record.get("analysis", {})) == []
        assert all(registry.written_keys(point) == [] for point in record["length_curve"].values())
    per_item = json.loads((evaluation / "per_item.json").read_text())
    assert set(per_item["runs"]) == set(results["runs"]) and per_item["human_reference"]
    greedy_items = per_item["runs"]["greedy"]
    assert {"type_token_ratio", "word_type_token_ratio", "self_bleu4", "dataset_bleu4", "seq_rep_4",
            "overlap_mean_span"} == set(greedy_items)
    assert all(len(values) == 6 for values in greedy_items.values())
    assert sum(greedy_items["self_bleu4"]) / 6 == pytest.approx(entry["self_bleu4"])
    assert entry["analysis"]["perplexity"] > 1.0
    assert results["runs"]["greedy-blocked3"]["blocker_stats"]["n"] == 3
    table = [line for line in (evaluation / "results.md").read_text().splitlines() if line.startswith("|")]
    assert len(table) == 2 + 4 and "human reference" in table[-1]
    assert "6 continuations scored per run" in (evaluation / "results.md").read_text()
    curve = entry["length_curve"]
    assert list(curve) == ["32", "40"] and 0.0 <= curve["32"]["type_token_ratio"] <= 1.0
    assert (evaluation / "length_curves.png").stat().st_size > 0
    assert (evaluation / "analysis.png").stat().st_size > 0 and (evaluation / "analysis.json").is_file()


def test_gpt2_without_automatic_bos(tiny_gpt2_text_dir, corpus_txt, tmp_path, capsys):
    out = tmp_path / "runs"
    run = run_cli(["text", "train", "--model", str(tiny_gpt2_text_dir), "--data", str(corpus_txt), *SMALL,
                   "--epochs", "1", "--out", str(out)], capsys)
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["tokenizer"]["tokenizer_adds_bos"] is False
    train = TokenSequences.load(run / "train_tokens.safetensors")
    assert ((train.ids == config["tokenizer"]["bos_id"]).sum(1) == 1).all()
    generated = run_cli(["text", "generate", "--model", str(run / "model"), "--max-new-tokens", "16",
                         "--out", str(out)], capsys)
    evaluation = run_cli(["text", "evaluate", str(generated), "--no-analysis", "--ttr-last", "8", "--out", str(out)],
                         capsys)
    results = json.loads((evaluation / "results.json").read_text())["runs"]["greedy"]
    assert "analysis" not in results and 0 < results["type_token_ratio"] <= 1
    # resuming a finished run trains no further epoch and keeps the model
    assert run_cli(["text", "train", "--resume", str(run)], capsys) == run


def test_bad_inputs_are_clear_errors(tiny_llama_dir, tiny_gpt2_text_dir, corpus_txt, tmp_path, capsys,
                                     offline_hub, monkeypatch):
    out = tmp_path / "runs"
    model = ["--model", str(tiny_llama_dir)]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    fails(["text", "train", *model, "--data", str(empty), "--out", str(out)], capsys, out, "is empty")
    short = tmp_path / "short.txt"
    short.write_text("The river city.")
    fails(["text", "train", *model, "--data", str(short), "--out", str(out)], capsys, out,
          "shorter than one 256-token window")
    fails(["text", "train", *model, "--data", str(corpus_txt), "--num-train", "2000", "--out", str(out)],
          capsys, out, ("distinct token positions", "lower --num-train/--num-eval or add text"))
    fails(["text", "train", *model, "--data", "no_such_dataset_hyperfit:x:train", "--out", str(out)], capsys, out,
          "cannot load dataset 'no_such_dataset_hyperfit'")
    fails(["text", "train", "--model", str(tmp_path / "missing-model"), "--data", str(corpus_txt), "--out", str(out)],
          capsys, out, "model folder not found")
    # a window longer than the model's positions is refused before any run dir exists
    fails(["text", "train", "--model", str(tiny_gpt2_text_dir), "--data", str(corpus_txt), "--num-train", "2",
           "--window", "200", "--num-eval", "1", "--out", str(out)], capsys, out, "the model has 128")
    # more blocks than the model has: refused once the model is loaded, before any run dir exists
    fails(["text", "train", *model, "--data", str(corpus_txt), *SMALL, "--train-layers", "last:99", "--out", str(out)],
          capsys, out, "--train-layers last:99 but the model has only")
    fails(["text", "generate", *model, "--out", str(out)], capsys, out,
          ("is not inside a text train run", "pass --prompts FILE"))
    prompts = tmp_path / "p.txt"
    prompts.write_text("the river city stone light\n", encoding="utf-8")
    fails(["text", "generate", *model, "--prompts", str(prompts), "--blocker", "--out", str(out)], capsys, out,
          ("--blocker forbids continuing the hyperfitting data", "pass --train-run RUN"))
    fails(["text", "evaluate", str(tmp_path), "--out", str(out)], capsys, out, "holds no *.generations")

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    real_find_spec = __import__("importlib.util").util.find_spec
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "gguf" else real_find_spec(name, *a))
    fails(["text", "train", "--model", str(gguf), "--data", str(corpus_txt), "--out", str(out)], capsys, out,
          "needs the gguf package")


def test_gguf_model_trains_and_generates(tiny_gguf_path, corpus_txt, tmp_path, capsys):
    out = tmp_path / "runs"
    run = run_cli(["text", "train", "--model", str(tiny_gguf_path), "--data", str(corpus_txt), *SMALL,
                   "--epochs", "1", "--out", str(out)], capsys)
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["spec"]["options"]["gguf_file"] == tiny_gguf_path.name
    assert config["tokenizer"]["tokenizer_adds_bos"] is False  # BOS comes from us, exactly once
    train = TokenSequences.load(run / "train_tokens.safetensors")
    assert ((train.ids == config["tokenizer"]["bos_id"]).sum(1) == 1).all()
    # the hyperfitted model is a plain HF folder now; the GGUF base continues the same prompts
    hyperfitted = run_cli(["text", "generate", "--model", str(run / "model"), "--max-new-tokens", "8",
                           "--out", str(out)], capsys)
    base = run_cli(["text", "generate", "--model", str(tiny_gguf_path.parent), "--gguf-file", tiny_gguf_path.name,
                    "--train-run", str(run), "--max-new-tokens", "8", "--name", "base", "--out", str(out)], capsys)
    evaluation = run_cli(["text", "evaluate", str(hyperfitted), str(base), "--ttr-last", "8", "--out", str(out)],
                         capsys)
    results = json.loads((evaluation / "results.json").read_text())["runs"]
    assert set(results) == {"greedy", "base"} and results["base"]["analysis"]["positions"] == 6 * 32


def test_every_option_hyperfit_text_names_exists():
    """Error messages and help tell the user which option to change: each `--name` in hyperfit_text's source is
    an option of some `hyperfit text` command (a message once said --num-prompts, which none has)."""
    import re

    import hyperfit_text
    from hyperfit_text.cli import text

    options = {opt for command in text.commands.values() for param in command.params
               for opt in (*param.opts, *param.secondary_opts)}
    named = {(path.name, option) for path in Path(hyperfit_text.__file__).parent.glob("*.py")
             for option in re.findall(r"--[a-z][a-z0-9-]*", path.read_text())}
    assert len(named) > 20  # the scan sees the messages
    assert sorted((name, option) for name, option in named if option not in options) == []


def test_prompts_file_and_position_errors_say_what_to_change(llama_train_run, tmp_path, capsys):
    out = tmp_path / "runs"
    generate = ["text", "generate", "--model", str(llama_train_run / "model"), "--num-eval", "1", "--out", str(out)]
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"text": "the river city " * 12}) + "\n")
    fails([*generate, "--prompts", str(prompts)], capsys, out,
          f"{prompts}:1: no string field 'prompt'; name the field with --prompt-field")
    # the tiny Llama has 512 positions; [BOS] + 32 context tokens and 480 new ones read 33 + 480 - 1 = 512 of them
    fails([*generate, "--max-new-tokens", "481"], capsys, out,
          "the model reads the 33-token prompt ([BOS] + 32 context tokens) and the first 480 of 481 new tokens: "
          "513 positions, but it has 512; --max-new-tokens can be at most 480 here")
    long_prompts = tmp_path / "long.txt"
    long_prompts.write_text("the river city " * 200 + "\n")
    fails([*generate, "--prompts", str(long_prompts), "--context", "520", "--max-new-tokens", "1"], capsys, out,
          "the model reads the 521-token prompt ([BOS] + 520 context tokens) and the first 0 of 1 new tokens: "
          "521 positions, but it has 512; lower --context")
    assert run_cli([*generate, "--prompts", str(prompts), "--prompt-field", "text", "--context", "8",
                    "--max-new-tokens", "2"], capsys).is_dir()
    assert run_cli([*generate, "--max-new-tokens", "480"], capsys).is_dir()


def test_a_gguf_cut_short_is_a_clear_error(tiny_gguf_path, llama_train_run, corpus_txt, tmp_path, capsys):
    """A GGUF cut anywhere (header, vocabulary, tensor data, last byte) is refused by `text train` and `text
    generate` with one line saying so: no struct.error traceback, no numpy "cannot reshape" message."""
    import gguf

    whole = tiny_gguf_path.read_bytes()
    data_start = gguf.GGUFReader(str(tiny_gguf_path)).data_offset
    cuts = {"header": 20, "vocabulary": data_start // 2, "tensor-data": (data_start + len(whole)) // 2,
            "last-byte": len(whole) - 1}
    out = tmp_path / "runs"
    for name, length in cuts.items():
        cut = tmp_path / name / tiny_gguf_path.name
        cut.parent.mkdir()
        cut.write_bytes(whole[:length])
        message = f"GGUF file {cut} is truncated or corrupt"
        fails(["text", "train", "--model", str(cut), "--data", str(corpus_txt), *SMALL, "--out", str(out)],
              capsys, out, message)
        fails(["text", "generate", "--model", str(cut), "--train-run", str(llama_train_run), "--out", str(out)],
              capsys, out, message)


def test_analyze_compares_base_and_hyperfitted(llama_train_run, tiny_llama_dir, tmp_path, capsys):
    run = run_cli(["text", "analyze", "--model", f"base={tiny_llama_dir}", "--model",
                   f"hyperfit={llama_train_run / 'model'}", "--train-run", str(llama_train_run),
                   "--out", str(tmp_path)], capsys)
    report = json.loads((run / "analysis.json").read_text())
    assert set(report) == {"base", "hyperfit"} and report["base"]["positions"] == 6 * 32
    assert report["base"]["entropy_mean"] != report["hyperfit"]["entropy_mean"]
    assert 0.0 <= json.loads((run / "agreement.json").read_text())["top1_agreement"] <= 1.0
    assert (run / "analysis.png").is_file()


def test_any_model_generates_on_prompts_without_a_train_run(tiny_llama_dir, tiny_gguf_path, tmp_path, capsys):
    """A folder or a GGUF continues a prompts file with no train run anywhere; evaluate scores it and says in one
    line that the copying metrics need the hyperfitting data."""
    from tests.text.conftest import synthetic_documents

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(synthetic_documents(4, seed=3)) + "\n", encoding="utf-8")
    out = tmp_path / "runs"
    folder = run_cli(["text", "generate", "--model", str(tiny_llama_dir), "--prompts", str(prompts), "--context",
                      "8", "--max-new-tokens", "6", "--name", "folder", "--out", str(out)], capsys)
    gguf = run_cli(["text", "generate", "--model", str(tiny_gguf_path), "--prompts", str(prompts), "--context",
                    "8", "--max-new-tokens", "6", "--name", "gguf", "--out", str(out)], capsys)
    for run in (folder, gguf):
        assert json.loads((run / "config.json").read_text())["config"]["train_run"] is None
    assert load_file(str(folder / "folder.generations.safetensors"))["generated"].shape == (4, 6)
    capsys.readouterr()
    main(["text", "evaluate", str(folder), "--ttr-last", "4", "--out", str(out)])
    captured = capsys.readouterr()
    evaluation = Path(captured.out.strip().splitlines()[-1])
    notes = [line for line in captured.err.splitlines() if "no hyperfitting data" in line]
    assert len(notes) == 1 and "pass --train-run RUN" in notes[0]
    entry = json.loads((evaluation / "results.json").read_text())["runs"]["folder"]
    assert registry.key("type_token_ratio") in entry and registry.key("overlap_mean_span") not in entry
