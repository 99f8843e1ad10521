"""`hyperfit rate ...` end to end in-process: build, invite, results; refusals exit 2 with one line."""

import csv
import re
import json
from pathlib import Path

import pytest

from hyperfit_rate.stats import wilson_interval
from hyperfit_rate.store import Store
from hyperfit_rate.study import Study

from .conftest import run_cli, text_run, write_run


def test_build_text_and_images(tmp_path, text_runs, image_runs, capsys):
    code, out, err = run_cli(["rate", "build", tmp_path / "t", "--runs", *text_runs, "--seed", "4"], capsys)
    assert code == 0, err
    assert out.strip() == str(tmp_path / "t") and "14 pairs (12 vs-original, 2 attention) of text" in err
    assert "texts of 16 tokens each; special tokens, left out of what raters see, were in none" in err
    chat = text_run(tmp_path, "chat", [f"fine {i}" for i in range(6)], special=1)
    code, out, err = run_cli(["rate", "build", tmp_path / "c", "--runs", *text_runs, chat], capsys)
    assert code == 0 and "special tokens, left out of what raters see, were in 6 of 6 chat texts" in err
    code, out, err = run_cli(["rate", "build", tmp_path / "i", "--runs", image_runs[0], "--runs", image_runs[1],
                              "--pairs-per-condition", "2", "--condition-vs-condition", "--attention-share", "0"],
                             capsys)
    assert code == 0, err
    assert "6 pairs (4 vs-original, 2 vs-condition) of images" in err
    assert len(list((tmp_path / "i" / "images").glob("*.png"))) > 0


@pytest.mark.parametrize("case, message", [
    ("missing", "error: run dir not found"),
    ("wrong kind", "run-train is a `vision train` run with no"),
    ("mixed", "error: cannot mix text and image runs"),
    ("exists", "already exists"),
    ("no runs", "give at least one run dir"),
    ("bad pairs", "is neither a number nor 'all'"),
])
def test_build_refusals_exit_2_with_one_line(tmp_path, text_runs, image_runs, capsys, case, message):
    study = tmp_path / "study"
    args = {"missing": ["--runs", tmp_path / "nope"],
            "wrong kind": ["--runs", write_run(tmp_path / "run-train", "vision train")],
            "mixed": ["--runs", text_runs[0], image_runs[0]],
            "exists": ["--runs", text_runs[0]],
            "no runs": [],
            "bad pairs": ["--runs", text_runs[0], "--pairs-per-condition", "some"]}[case]
    if case == "exists":
        study.mkdir()
    code, out, err = run_cli(["rate", "build", study, *args], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert case == "exists" or not study.exists()


def test_commands_on_a_folder_that_is_not_a_study(tmp_path, capsys):
    for command in (["invite", tmp_path, "--raters", "2"], ["results", tmp_path], ["serve", tmp_path]):
        code, _, err = run_cli(["rate", *command], capsys)
        assert code == 2 and err.strip().splitlines() == [f"error: {tmp_path} is not a study (no study.json); "
                                                          "make one with `hyperfit rate build`"]


def test_invite_prints_links_and_public_serving_needs_them(text_study, capsys):
    code, _, err = run_cli(["rate", "serve", text_study, "--host", "0.0.0.0", "--port", "0"], capsys)
    assert code == 2 and "admits invited raters only" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(["rate", "invite", text_study, "--raters", "3", "--url", "http://10.0.0.5:8000/"],
                             capsys)
    assert code == 0, err
    lines = [line.split("\t") for line in out.strip().splitlines()]
    assert [name for name, _ in lines] == ["rater-01", "rater-02", "rater-03"]
    tokens = {r.name: r.token for r in Store.open(text_study).raters()}
    assert [url for _, url in lines] == [f"http://10.0.0.5:8000/r/{tokens[n]}" for n, _ in lines]
    code, out, _ = run_cli(["rate", "invite", text_study, "--raters", "1"], capsys)
    assert out.startswith("rater-04\t")


def answer_for(study, rater, pair_id, winner):
    """The button `rater` presses to make `winner` ('a' / 'b' / 'tie') win this pair."""
    if winner == "tie":
        return "equal"
    return "left" if study.left_version(rater, pair_id) == winner else "right"


@pytest.fixture
def rated_study(text_study):
    """ann and bob rate alike and pass the checks; eve prefers the broken texts and hyperfit everywhere."""
    study, store = Study(text_study), Store.open(text_study)
    raters = {name: store.join(name) for name in ("ann", "bob", "eve")}
    for pair in study.data["pairs"]:
        for name, rater in raters.items():
            if pair["kind"] == "attention":
                winner = "b" if name == "eve" else "a"  # a = the original, b = its broken copy
            elif name == "eve":
                winner = "a" if pair["a"] == "hyperfit-greedy" else "b"
            elif pair["a"] == "base-greedy":
                winner = "b"
            else:  # hyperfit-greedy vs the original: items 0-2 won, 3 tied, 4-5 lost
                winner = "a" if pair["item"] < 3 else "tie" if pair["item"] == 3 else "b"
            store.record_vote(rater, pair["id"], study.left_version(name, pair["id"]),
                              answer_for(study, name, pair["id"], winner))
    return text_study


def test_results_end_to_end(rated_study, tmp_path, capsys):
    code, out, err = run_cli(["rate", "results", rated_study, "--bootstrap", "200", "--out", tmp_path / "r"], capsys)
    assert code == 0, err
    assert "failed attention checks, excluded: eve (0/3)" in out
    result = json.loads((tmp_path / "r" / "results.json").read_text())
    assert result["excluded_raters"] == ["eve"] and result["votes"] == 45 and result["votes_used"] == 30
    hyper = result["vs_original"]["hyperfit-greedy"]
    assert (hyper["n"], hyper["wins"], hyper["ties"], hyper["losses"]) == (12, 6, 2, 4)
    assert hyper["win_or_tie"] == pytest.approx(8 / 12)
    assert (hyper["ci_low"], hyper["ci_high"]) == pytest.approx(wilson_interval(8, 12))
    base = result["vs_original"]["base-greedy"]
    assert (base["n"], base["win_or_tie"], base["ci_low"]) == (12, 0.0, 0.0)
    bt = result["bradley_terry"]
    assert [name for name, row in sorted(bt.items(), key=lambda kv: kv[1]["rank"])] == \
           ["hyperfit-greedy", "original", "base-greedy"]
    assert bt["original"]["strength"] == 0 and bt["hyperfit-greedy"]["low"] <= bt["hyperfit-greedy"]["strength"]
    # ann and bob always agree: alpha = kappa = 1 over the 12 pairs both rated
    assert result["agreement"]["pairs"] == 12 and result["agreement"]["krippendorff_alpha"] == pytest.approx(1)
    assert result["agreement"]["fleiss_kappa"] == pytest.approx(1)
    rows = list(csv.DictReader((tmp_path / "r" / "results.csv").open()))
    assert [r["condition"] for r in rows] == ["hyperfit-greedy", "original", "base-greedy"]
    votes = list(csv.DictReader((tmp_path / "r" / "votes.csv").open()))
    assert len(votes) == 45 and {v["preferred"] for v in votes if v["rater"] == "eve" and v["kind"] == "attention"} \
        == {"broken"}
    assert (tmp_path / "r" / "results.png").read_bytes().startswith(b"\x89PNG")


def test_results_keep_failed(rated_study, capsys):
    code, out, err = run_cli(["rate", "results", rated_study, "--bootstrap", "0", "--keep-failed"], capsys)
    assert code == 0, err
    result = json.loads((Path(rated_study) / "results" / "results.json").read_text())
    assert result["excluded_raters"] == [] and result["votes_used"] == 45
    assert result["vs_original"]["hyperfit-greedy"]["n"] == 18
    assert "kept (--keep-failed): eve" in out
    assert result["agreement"]["krippendorff_alpha"] < 1


def test_results_of_a_study_without_votes(image_study, capsys):
    code, out, err = run_cli(["rate", "results", image_study, "--bootstrap", "10"], capsys)
    assert code == 0, err
    result = json.loads((Path(image_study) / "results" / "results.json").read_text())  # strict JSON: no NaN
    assert result["votes"] == 0 and result["vs_original"]["base-greedy"]["win_or_tie"] is None
    assert "0 of 0 votes used" in out


def test_results_of_one_rater_say_agreement_needs_two(text_study, capsys):
    study, store = Study(text_study), Store.open(text_study)
    ann = store.join("ann")
    for pair in study.data["pairs"]:
        winner = "a" if pair["kind"] == "attention" else ("a", "b", "tie")[pair["item"] % 3]
        store.record_vote(ann, pair["id"], study.left_version("ann", pair["id"]),
                          answer_for(study, "ann", pair["id"], winner))
    code, out, err = run_cli(["rate", "results", text_study, "--bootstrap", "50"], capsys)
    assert code == 0, err
    assert "Krippendorff's alpha needs >= 2 raters" in out and "nan" not in out.lower()
    agreement = json.loads((Path(text_study) / "results" / "results.json").read_text())["agreement"]
    assert agreement["krippendorff_alpha"] is None and agreement["alpha_note"] == "needs >= 2 raters"


def test_free_text_names_are_safe_in_the_plot_and_the_csv(tmp_path, capsys):
    """Condition names come from `--name` (free text): "$^$" broke matplotlib's mathtext; a name or rater
    starting with = + - @ is a formula to a spreadsheet."""
    runs = [text_run(tmp_path, name, [f"{name} says {i}" for i in range(6)])
            for name in ("greedy$^$", "=HYPERLINK(1)", "+1+1")]
    code, _, err = run_cli(["rate", "build", tmp_path / "s", "--runs", *runs, "--attention-share", "0"], capsys)
    assert code == 0, err
    study, store = Study(tmp_path / "s"), Store.open(tmp_path / "s")
    raters = [store.join(name) for name in ("@SUM", "-2+3")]
    for rater in raters:
        for pair_id in study.pair_ids[:6]:
            store.record_vote(rater, pair_id, study.left_version(rater.name, pair_id), "right")
    code, out, err = run_cli(["rate", "results", tmp_path / "s", "--bootstrap", "20"], capsys)
    assert code == 0, err
    results = tmp_path / "s" / "results"
    assert (results / "results.png").read_bytes().startswith(b"\x89PNG")
    for name in ("results.csv", "votes.csv"):
        for row in csv.reader((results / name).open()):
            for cell in row:
                assert not cell.startswith(("=", "+", "@")) and not re.match(r"-\D", cell), (name, cell)
    conditions = [row["condition"] for row in csv.DictReader((results / "results.csv").open())]
    assert sorted(conditions) == sorted(["greedy$^$", "'=HYPERLINK(1)", "'+1+1", "original"])
    votes = list(csv.DictReader((results / "votes.csv").open()))
    assert {v["rater"] for v in votes} == {"'@SUM", "'-2+3"}
    for row in csv.DictReader((results / "results.csv").open()):  # numbers stay numbers, negative ones too
        float(row["bt_strength_vs_original"]), float(row["bt_low"])
