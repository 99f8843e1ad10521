"""A new modality is one package plus one entry point (docs/extending.md). The toy package
tests/fixtures/hyperfit_digits (digit sequences on a tiny GPT-2) is "installed" the way pip leaves a package for
importlib.metadata, a dist-info whose entry_points.txt is its pyproject's, and nothing else: no file of core,
vision, text or rate names it. The real `hyperfit` CLI then trains, continues, scores and builds a rating study on it.
"""

import json
import os
import re
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from hyperfit_core import adapters
from hyperfit_core.cli import main

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "hyperfit_digits"
COUNTING = [[(start + i) % 10 for i in range(16)] for start in range(10)]  # 0 1 2 3 ..., 1 2 3 4 ..., ...


def install(site: Path, package: Path) -> None:
    """What `pip install package` leaves for importlib.metadata: NAME-VERSION.dist-info with the pyproject's entry
    points (the code itself is found on PYTHONPATH)."""
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items())
        for group, entries in project["entry-points"].items()))


@pytest.fixture
def digits_installed(tmp_path, monkeypatch):
    """The toy modality installed for this process and for the subprocesses it starts; its env."""
    site = tmp_path / "site"
    install(site, FIXTURE)
    path = os.pathsep.join([str(site), str(FIXTURE), str(ROOT), os.environ.get("PYTHONPATH", "")])
    monkeypatch.syspath_prepend(str(FIXTURE))
    monkeypatch.syspath_prepend(str(site))
    adapters.adapters.cache_clear()
    yield {**os.environ, "PYTHONPATH": path}
    adapters.adapters.cache_clear()  # later tests see the shipped modalities only


def hyperfit(args, env, cwd, code="from hyperfit_core.cli import main; main()"):
    """The real `hyperfit` entry (hyperfit_core.cli:main, as the console script runs it) in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_a_toy_modality_trains_continues_scores_and_is_rated(tmp_path, digits_installed, capsys):
    data = tmp_path / "digits.txt"
    data.write_text("".join(" ".join(map(str, line)) + "\n" for line in COUNTING))

    # train: the core's recipe on the toy's Modality, in a fresh interpreter that finds `digits` by its entry point
    train = Path(hyperfit(["digits", "train", "--data", data, "--num-train", 8, "--length", 12, "--epochs", 20,
                           "--batch-size", 8, "--lr", 3e-2, "--save-every", 100, "--device", "cpu", "--out",
                           tmp_path / "runs"], digits_installed, tmp_path))
    assert train.name.endswith("-digits-train") and (train / "model" / "config.json").is_file()
    losses = [e["loss"] for e in map(json.loads, (train / "metrics.jsonl").read_text().splitlines()) if "loss" in e]
    assert len(losses) == 20 and losses[-1] < 0.6 * losses[0]  # it learnt something in 20 steps

    # continue and score: the same root command in this process (the imports are paid once)
    main(["digits", "continue", "--model", str(train / "model"), "--prompts", str(data), "--context", "4",
          "--max-new-tokens", "8", "--out", str(tmp_path / "runs")])
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    rows = [json.loads(line) for line in (run / "greedy.digits.jsonl").read_text().splitlines()]
    assert [r["context"] for r in rows] == [s[:4] for s in COUNTING]
    assert [r["reference"] for r in rows] == [s[4:12] for s in COUNTING]
    import torch
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(train / "model")
    prompts = torch.tensor([[10] + s[:4] for s in COUNTING])
    greedy = model.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=8, do_sample=False,
                            pad_token_id=10)
    assert [r["continuation"] for r in rows] == greedy[:, 5:].tolist()  # the core's decode loop, greedy

    main(["digits", "score", str(run)])
    scores = json.loads((run / "results.json").read_text())["greedy"]
    continuations = [r["continuation"] for r in rows]
    assert scores["type_token_ratio"] == pytest.approx(sum(len(set(c)) / 8 for c in continuations) / 10)
    bigrams = [list(zip(c, c[1:])) for c in continuations]
    assert scores["seq_rep_2"] == pytest.approx(sum(1 - len(set(b)) / 7 for b in bigrams) / 10)
    assert set(scores) == {"type_token_ratio", "seq_rep_1", "seq_rep_2"}  # the registry's token metrics

    # rate build: the toy's reader shows digits as text; rate (and the toy's adapter module) import no torch
    last = hyperfit(["rate", "build", tmp_path / "study", "--runs", run, "--attention-share", 0], digits_installed,
                    tmp_path, code="import sys; from hyperfit_core.cli import main; main(); "
                                   "print(sorted({'torch', 'transformers'} & set(sys.modules)))")
    assert last == "[]"
    study = json.loads((tmp_path / "study" / "study.json").read_text())
    assert study["kind"] == "text" and study["conditions"] == ["greedy"] and len(study["pairs"]) == 10
    assert study["items"]["3"] == {"context": "3 4 5 6", "versions": {
        "greedy": " ".join(map(str, rows[3]["continuation"])), "original": "7 8 9 0 1 2 3 4"}}


# ------------------------------------------------------------------ entry points that do not load -----------------

def fake_entry_points(monkeypatch, tmp_path, modalities: dict):
    """The shipped entry points plus `modalities` ({name: value}); modules written into tmp_path."""
    shipped = {group: list(adapters.entry_points(group=group)) for group in (adapters.MODALITIES, adapters.COMMANDS)}
    extra = [EntryPoint(name, value, adapters.MODALITIES) for name, value in modalities.items()]
    monkeypatch.setattr(adapters, "entry_points", lambda group: shipped[group] + (
        extra if group == adapters.MODALITIES else []))
    monkeypatch.syspath_prepend(str(tmp_path))
    adapters.adapters.cache_clear()


@pytest.fixture
def clean_adapters():
    yield
    adapters.adapters.cache_clear()


def run_cli(args, capsys):
    capsys.readouterr()
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_a_broken_entry_point_is_one_warning_and_the_shipped_commands_still_run(tmp_path, monkeypatch, capsys,
                                                                               clean_adapters):
    (tmp_path / "hyperfit_half").mkdir()
    (tmp_path / "hyperfit_half" / "__init__.py").write_text("")
    (tmp_path / "hyperfit_half" / "adapter.py").write_text(
        "from hyperfit_core.adapters import Adapter\nADAPTER = Adapter(name='half', commands='hyperfit_half.cli:half')\n"
        "RATE = Adapter(name='rate', commands='hyperfit_half.cli:half')\n")
    (tmp_path / "hyperfit_half" / "cli.py").write_text("import hyperfit_nowhere\n")
    fake_entry_points(monkeypatch, tmp_path, {"gone": "hyperfit_nowhere.adapter:ADAPTER",
                                              "half": "hyperfit_half.adapter:ADAPTER",
                                              "odd": "hyperfit_half:__name__", "rate": "hyperfit_half.adapter:RATE"})

    code, out, err = run_cli(["--help"], capsys)
    assert code == 0 and re.search(r"^\s+rate\s", out, re.M) and re.search(r"^\s+text\s", out, re.M)
    assert re.search(r"^\s+vision\s", out, re.M) and "gone" not in out and "half" not in out
    assert err.splitlines() == [
        "warning: left out the hyperfit.modalities entry point 'gone' (hyperfit_nowhere.adapter:ADAPTER): "
        "ModuleNotFoundError: No module named 'hyperfit_nowhere'",
        "warning: left out the hyperfit.modalities entry point 'odd' (hyperfit_half:__name__): it gives str, not a "
        "hyperfit_core.adapters.Adapter named 'odd'",
        "warning: left out the hyperfit.modalities entry point 'rate' (hyperfit_half.adapter:RATE): `hyperfit rate` "
        "is taken",
        "warning: left out 'half': the commands of modality 'half' (hyperfit_half.cli:half) does not load: "
        "ModuleNotFoundError: No module named 'hyperfit_nowhere'"]

    code, out, err = run_cli(["text", "--help"], capsys)  # a shipped command: runs (the warnings came once)
    assert code == 0 and "generate" in out and err == ""
    code, out, err = run_cli(["rate", "--help"], capsys)  # still the rating app, not the modality named rate
    assert code == 0 and "Blind pairwise human rating" in out
    code, out, err = run_cli(["half", "train"], capsys)
    assert code == 2 and err.splitlines() == ["error: the commands of modality 'half' (hyperfit_half.cli:half) does "
                                              "not load: ModuleNotFoundError: No module named 'hyperfit_nowhere'"]
    code, out, err = run_cli(["gone", "train"], capsys)
    assert code == 2 and err.splitlines() == ["error: No such command 'gone'. (see hyperfit --help)"]


def test_the_toy_builds_on_the_core_alone_and_nothing_shipped_names_it():
    from tests.test_layout import PACKAGES, imported_packages

    used = set().union(*(imported_packages(p) for p in (FIXTURE / "hyperfit_digits").glob("*.py")))
    assert "hyperfit_core" in used and not used & set(PACKAGES) - {"hyperfit_core"}
    for path in (p for package in PACKAGES for p in (ROOT / package).rglob("*.py")):
        assert "hyperfit_digits" not in path.read_text(), path


def test_docs_extending_shows_every_file_of_the_toy_as_it_is():
    """docs/extending.md walks through the toy: each `path`: block is that fixture file, and none is left out."""
    doc = (ROOT / "docs" / "extending.md").read_text()
    shown = dict(re.findall(r"^`(tests/fixtures/hyperfit_digits/[^`]+)`:\n\n```\w*\n(.*?)^```$", doc, re.M | re.S))
    files = {str(p.relative_to(ROOT)) for p in FIXTURE.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert set(shown) == files
    for path, text in shown.items():
        assert text == (ROOT / path).read_text(), path
    assert "(docs/extending.md)" in (ROOT / "README.md").read_text()
