"""scripts/text_claim_stats.py on a tiny run tree laid out as scripts/measure_text_claim.sh lays it out (2 seeds x
2 corpora x the claim's conditions, 4 prompts each, tiny models): one evaluation per (seed, corpus), paired
differences that are the per-prompt differences of those evaluations, MAUVE per seed, reuse on a second call."""

import json
import math
import runpy
from pathlib import Path

import numpy as np
import pytest

from hyperfit_core.cli import main as cli
from hyperfit_core.formats import PER_ITEM, RESULTS
from hyperfit_core.paired import compare

from .conftest import synthetic_documents
from .test_cli import SMALL

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "text_claim_stats.py"


def new_run(out: Path, args: list[str]) -> Path:
    before = set(out.iterdir()) if out.exists() else set()
    cli(args + ["--out", str(out)])
    (run,) = set(out.iterdir()) - before
    return run


@pytest.fixture(scope="module")
def claim_tree(tiny_llama_dir, corpus_txt, tmp_path_factory):
    root = tmp_path_factory.mktemp("text-claim")
    other = root / "other.txt"
    other.write_text("\n\n".join(synthetic_documents(60, seed=11)) + "\n")
    train = new_run(root / "train", ["text", "train", "--model", str(tiny_llama_dir), "--data", str(corpus_txt),
                                     *SMALL, "--epochs", "2", "--lr", "3e-3"])
    hyperfitted, base = ["--model", str(train / "model")], ["--model", str(tiny_llama_dir), "--train-run", str(train)]
    conditions = {"hyperfitted-greedy": hyperfitted, "base-greedy": base,
                  "base-top-p": [*base, "--decoding", "top-p"],
                  "hyperfitted-greedy-blocked5": [*hyperfitted, "--blocker", "--blocker-n", "3"]}
    for seed in (0, 1):
        for corpus, path in (("a", corpus_txt), ("b", other)):
            dest = root / f"s{seed}" / f"gen-{corpus}"
            lines = []
            extra = {"base-temperature-T0.8": [*base, "--decoding", "sample", "--temperature", "0.8"]} \
                if (seed, corpus) == (0, "a") else {}
            for name, args in {**conditions, **extra}.items():
                run = new_run(dest, ["text", "generate", *args, "--prompts-from", str(path), "--prompt-seed",
                                     str(seed), "--num-eval", "4", "--max-new-tokens", "12", "--decode-seed",
                                     str(seed), "--name", name])
                lines.append(f"{name} {run}")
            (dest / "done.txt").write_text("\n".join(lines) + "\n")
    return root


def test_paired_statistics_are_those_of_the_per_prompt_values(claim_tree, tiny_gpt2_text_dir, tmp_path, capsys):
    script = runpy.run_path(str(SCRIPT), run_name="imported_by_test")
    out = tmp_path / "stats"
    argv = [str(claim_tree), "--out", str(out), "--quality-model", str(tiny_gpt2_text_dir), "--reps", "200"]
    record = script["main"](argv)
    assert record["command"].endswith(" ".join(argv)) and record["seeds"] == [0, 1] and record["corpora"] == ["a", "b"]
    assert set(record["evaluations"]) == {"s0/a", "s0/b", "s1/a", "s1/b"}
    saved = json.loads((out / "text_claim_stats.json").read_text())
    assert saved["comparisons"] == json.loads(json.dumps(record["comparisons"]))
    table = (out / "text_claim_stats.md").read_text()
    assert "### hyperfitted-greedy minus base-top-p" in table and "| MAUVE |" in table

    def evaluation(seed, corpus):
        run = Path(record["evaluations"][f"s{seed}/{corpus}"])
        return json.loads((run / RESULTS).read_text()), json.loads((run / PER_ITEM).read_text())

    def row(a, b, metric, scope):
        (found,) = [r for r in record["comparisons"]
                    if (r["a"], r["b"], r["metric"], r["scope"]) == (a, b, metric, scope)]
        return found

    # TTR, pooled: per seed, the prompts of both corpora; the same numbers compare() gives on per_item.json
    a_by_seed, b_by_seed = [], []
    for seed in (0, 1):
        a_items, b_items = [], []
        for corpus in ("a", "b"):
            results, items = evaluation(seed, corpus)
            assert len(results["runs"]) == (5 if (seed, corpus) == (0, "a") else 4)  # every condition at once
            a_items += items["runs"]["hyperfitted-greedy"]["type_token_ratio"]
            b_items += items["runs"]["base-top-p"]["type_token_ratio"]
        a_by_seed.append(a_items)
        b_by_seed.append(b_items)
    expected = compare(a_by_seed, b_by_seed, reps=200).to_dict()
    assert row("hyperfitted-greedy", "base-top-p", "type_token_ratio", "pooled")["result"] == expected
    assert expected["prompts"] == 16 and expected["seeds"] == 2

    # fluency: the log distance of each prompt's perplexity to the human continuation's, blocked minus unblocked
    _, items = evaluation(1, "b")
    human = items["human_reference"]["fluency_perplexity"]
    distance = {c: [abs(math.log(v) - math.log(h)) for v, h in zip(items["runs"][c]["fluency_perplexity"], human)]
                for c in ("hyperfitted-greedy-blocked5", "hyperfitted-greedy")}
    fluency = row("hyperfitted-greedy-blocked5", "hyperfitted-greedy", "fluency_perplexity", "b")["result"]
    assert fluency["prompts"] == 8 and fluency["seeds"] == 2
    mine = np.subtract(distance["hyperfitted-greedy-blocked5"], distance["hyperfitted-greedy"])
    _, items0 = evaluation(0, "b")
    human0 = items0["human_reference"]["fluency_perplexity"]
    mine0 = [abs(math.log(v) - math.log(h)) - abs(math.log(w) - math.log(h)) for v, w, h in zip(
        items0["runs"]["hyperfitted-greedy-blocked5"]["fluency_perplexity"],
        items0["runs"]["hyperfitted-greedy"]["fluency_perplexity"], human0)]
    assert fluency["mean"] == pytest.approx(np.mean([*mine0, *mine]))

    # MAUVE is set-level: one difference per seed and corpus
    mauve = row("hyperfitted-greedy", "base-greedy", "mauve", "a")
    differences = [evaluation(s, "a")[0]["runs"]["hyperfitted-greedy"]["mauve"]
                   - evaluation(s, "a")[0]["runs"]["base-greedy"]["mauve"] for s in (0, 1)]
    assert mauve["result"]["prompts"] == 2 and mauve["result"]["mean"] == pytest.approx(np.mean(differences))
    assert row("hyperfitted-greedy", "base-greedy", "mauve", "pooled")["result"]["prompts"] == 4
    # the optional temperature condition exists in one (seed, corpus) only: compared there, absent elsewhere
    assert row("hyperfitted-greedy", "base-temperature-T0.8", "type_token_ratio", "a")["result"]["prompts"] == 4
    assert row("hyperfitted-greedy", "base-temperature-T0.8", "type_token_ratio", "b")["result"] is None

    # set-level values: each condition's results value per seed, their mean and sd over seeds, by corpus
    summary = record["set_level"]["a"]["hyperfitted-greedy"]["self_bleu4"]
    per_seed = [evaluation(s, "a")[0]["runs"]["hyperfitted-greedy"]["self_bleu4"] for s in (0, 1)]
    assert summary["values"] == per_seed and summary["seeds"] == [0, 1]
    assert summary["mean"] == pytest.approx(np.mean(per_seed)) and summary["sd"] == pytest.approx(np.std(per_seed, ddof=1))
    assert record["set_level"]["b"]["human reference"]["fluency_perplexity"]["values"] == [
        evaluation(s, "b")[0]["human_reference"]["fluency_perplexity"] for s in (0, 1)]
    assert "mauve" not in record["set_level"]["b"]["human reference"]  # MAUVE is against the human texts
    temperature = record["set_level"]["a"]["base-temperature-T0.8"]["type_token_ratio"]
    assert temperature["seeds"] == [0] and temperature["sd"] is None

    # MAUVE over the pooled texts: one condition's continuations of every seed at once against the human ones,
    # on the same features mauve-text gets when called directly
    from hyperfit_text.evaluate import find_generation_files, load_generations
    from hyperfit_text.mauve_score import mauve_score
    from hyperfit_text.quality import load_quality_model, scored_texts
    from hyperfit_text.text_features import text_features

    generated, human = [], []
    for seed in (0, 1):
        done = (claim_tree / f"s{seed}" / "gen-a" / "done.txt").read_text().splitlines()
        (run,) = [line.split()[1] for line in done if line.split()[0] == "hyperfitted-greedy"]
        (gens,) = load_generations(find_generation_files([run]))
        generated += scored_texts(gens.texts, "continuation")
        human += scored_texts(gens.texts, "reference")
    scorer = load_quality_model(str(tiny_gpt2_text_dir), "auto")
    direct = mauve_score(text_features(scorer, generated), text_features(scorer, human))
    pooled = record["pooled_mauve"]["a"]["hyperfitted-greedy"]
    assert pooled["mauve"] == pytest.approx(direct["mauve"], abs=1e-6) and pooled["mauve_texts"] == 8
    assert pooled["cells"] == ["s0/a", "s1/a"] and record["pooled_mauve"]["pooled"]["base-greedy"]["mauve_texts"] == 16
    assert "### MAUVE over the pooled texts" in table

    # a second call reuses the four evaluations instead of scoring again
    again = script["main"](argv)
    assert again["evaluations"] == record["evaluations"]
    assert len(list(out.glob("s*/gen-*/*-text-evaluate"))) == 4


def test_every_control_present_is_compared_with_hyperfitted_greedy():
    stats = runpy.run_path(str(SCRIPT))
    found = ["base-greedy", "base-top-p", "base-temperature", "base-temperature-T0.7", "swap-last1", "lora-last1",
             "lora-last12", "lora-lastall", "lora-last", "lora-lastx", "hyperfitted-greedy", "other"]
    extra = stats["comparison_pairs"](found)[len(stats["FIXED_COMPARISONS"]):]
    assert extra == [("hyperfitted-greedy", c) for c in ["base-temperature", "base-temperature-T0.7", "swap-last1",
                                                         "lora-last1", "lora-last12", "lora-lastall"]]


def test_a_listed_run_that_is_not_there_is_one_error_line(claim_tree, tmp_path, capsys):
    script = runpy.run_path(str(SCRIPT), run_name="imported_by_test")
    root = tmp_path / "tree"
    (root / "s0" / "gen-a").mkdir(parents=True)
    (root / "s0" / "gen-a" / "done.txt").write_text(f"base-greedy {tmp_path / 'gone'}\n")
    with pytest.raises(SystemExit, match=r"^error: .*done.txt:1: .*gone is not a `text generate` run"):
        script["main"]([str(root), "--out", str(tmp_path / "stats")])
    assert not (tmp_path / "stats").exists()


def test_seeds_and_corpora_select_the_cells_evaluated(claim_tree, tmp_path, capsys):
    script = runpy.run_path(str(SCRIPT), run_name="imported_by_test")
    out = tmp_path / "stats"
    record = script["main"]([str(claim_tree), "--out", str(out), "--quality-model", "none", "--reps", "50",
                             "--corpora", "b", "--seeds", "1"])
    assert set(record["evaluations"]) == {"s1/b"} and record["corpora"] == ["b"] and record["seeds"] == [1]
    pooled = [r for r in record["comparisons"] if r["scope"] == "pooled" and r["metric"] == "type_token_ratio"
              and r["b"] == "base-top-p"]
    assert pooled[0]["result"]["prompts"] == 4
    with pytest.raises(SystemExit, match=r"^error: --corpora c: not among the runs found \(a, b\)"):
        script["main"]([str(claim_tree), "--out", str(tmp_path / "x"), "--corpora", "c"])
    with pytest.raises(SystemExit, match=r"^error: --seeds takes comma-separated seed numbers, got .x.$"):
        script["main"]([str(claim_tree), "--out", str(tmp_path / "x"), "--seeds", "x"])
    for option in ("--reps", "--ttr-last"):  # before any evaluation, not from the bootstrap after all of them
        with pytest.raises(SystemExit) as refused:
            script["main"]([str(claim_tree), "--out", str(tmp_path / "x"), option, "0"])
        assert refused.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1].endswith(f"error: argument {option}: must be at least 1, got 0")
    assert not (tmp_path / "x").exists()
