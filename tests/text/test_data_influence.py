"""scripts/data_influence.py end to end on a tiny Llama (text), and the fiction corpus' play -> paragraphs step."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tests.text.conftest import synthetic_documents

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def influence():
    yield load_script("data_influence")
    sys.modules.pop("data_influence", None)


TINY = ["--window", "16", "--num-eval", "3", "--context", "4", "--reference", "8", "--new-tokens", "8",
        "--ttr-last", "6", "--lr", "1e-3", "--decode-batch", "4"]


def test_text_length_four_conditions(influence, tiny_llama_dir, corpus_txt, tmp_path):
    out = tmp_path / "len"
    influence.main(["text-length", "--model", str(tiny_llama_dir), "--data", str(corpus_txt), "--seeds", "0", "1",
                    "--num-train", "2", "--epochs", "1", "--out", str(out), "--json", str(tmp_path / "copy.json"),
                    *TINY])
    result = json.loads((out / "text_length.json").read_text())
    assert json.loads((tmp_path / "copy.json").read_text()) == result
    assert set(result["summary"]) == {"base-greedy", "base-top-p", "hyperfitted-greedy",
                                      "hyperfitted-greedy-blocked5", "human reference"}
    assert result["summary"]["base-greedy"]["type_token_ratio"]["n"] == 2 and len(result["per_seed"]) == 2
    assert (out / "text_length.png").is_file()
    # --collect aggregates evaluate runs made elsewhere, to the same numbers, also from results.json files written
    # before the metric keys were unified (one of them rewritten here in the old spellings)
    evals = sorted(str(p.parent) for p in out.glob("seed*/eval/*/results.json"))
    old_style(Path(evals[0]) / "results.json", last=6)
    influence.main(["text-length", "--collect", *evals, "--out", str(tmp_path / "collected"), "--ttr-last", "6",
                    "--new-tokens", "8"])
    collected = json.loads((tmp_path / "collected" / "text_length.json").read_text())
    assert collected["summary"] == result["summary"] and collected["ttr_curve"] == result["ttr_curve"]
    with pytest.raises(SystemExit, match="over the last 6 tokens, not --ttr-last 5"):
        influence.main(["text-length", "--collect", *evals, "--out", str(tmp_path / "c5"), "--ttr-last", "5"])


def old_style(path: Path, last: int) -> None:
    """Rewrite an evaluate results.json with the keys evaluate wrote before hyperfit_core/metric_registry.py."""
    results = json.loads(path.read_text())
    for entry in [*results["runs"].values(), results["human_reference"]]:
        entry[f"ttr_tokens_last{last}"] = entry.pop("type_token_ratio")
        entry[f"ttr_words_last{last}"] = entry.pop("word_type_token_ratio")
        entry["overlap"] = {"mean_span": entry.pop("overlap_mean_span"), "max_span": entry.pop("overlap_max_span"),
                            "frac_above_threshold": entry.pop("overlap_frac_above_threshold")}
        for point in entry["length_curve"].values():
            point["ttr"] = point.pop("type_token_ratio")
    path.write_text(json.dumps(results))


def test_determinacy_quantity_and_type(influence, tiny_llama_dir, corpus_txt, tmp_path):
    model = ["--model", str(tiny_llama_dir), "--data", str(corpus_txt)]
    influence.main(["determinacy", *model, "--num-train", "4", "--batch-size", "2", "--steps", "2",
                    "--order-seeds", "0", "1", "--out", str(tmp_path / "det"), *TINY])
    det = json.loads((tmp_path / "det" / "determinacy.json").read_text())
    assert set(det["runs"]) == {"order0", "order1", "order0-shuffle1"}
    assert len(det["agreement"]["pairs"]) == 3 and 0 <= det["agreement"]["shuffle1_vs_order"] <= 1
    assert all(run["steps"] == 2 for run in det["runs"].values())
    assert (tmp_path / "det" / "determinacy.png").is_file()

    influence.main(["quantity", *model, "--sizes", "2", "4", "--batch-size", "2", "--steps", "2",
                    "--out", str(tmp_path / "qty"), *TINY])
    qty = json.loads((tmp_path / "qty" / "quantity.json").read_text())
    assert [p["epochs"] for p in qty["points"].values()] == [2, 1]  # 2 steps either way
    assert all(seed["steps"] == 2 for p in qty["points"].values() for seed in p["seeds"])

    other = tmp_path / "other.txt"
    other.write_text("\n\n".join(synthetic_documents(60, seed=7)) + "\n", encoding="utf-8")
    influence.main(["type", "--model", str(tiny_llama_dir), "--corpus", f"a={corpus_txt}", "--corpus",
                    f"b={other}", "--num-train", "2", "--epochs", "1", "--out", str(tmp_path / "type"), *TINY])
    kind = json.loads((tmp_path / "type" / "type.json").read_text())
    assert kind["names"] == ["a", "b"] and set(kind["cells"]) == {"a-on-a", "a-on-b", "b-on-a", "b-on-b"}
    assert len(kind["matrix"]["type_token_ratio"]) == 2 and (tmp_path / "type" / "type.png").is_file()


def test_quantity_needs_steps(influence, tiny_llama_dir):
    with pytest.raises(SystemExit):
        influence.main(["quantity", "--model", str(tiny_llama_dir), "--data", "x.txt"])


def test_drama_documents_one_per_scene_without_front_matter():
    fetch = load_script("fetch_text_assets")
    play = ("HAMLET\n\nPERSONS REPRESENTED.\n\nClaudius, King of Denmark.\n\nACT I.\n\nScene I. Elsinore.\n\n"
            "Ber.\nWho's there? Stand and unfold yourself now, friend.\n\nFran.\nNay, answer me: stand,\nand unfold "
            "yourself.\n\nScene II. A room.\n\nKing.\nThough yet of Hamlet our dear brother's death the memory "
            "be green.\n")
    docs = fetch.drama_documents(play)
    assert docs == ["Ber. Who's there? Stand and unfold yourself now, friend. Fran. Nay, answer me: stand, "
                    "and unfold yourself.",
                    "King. Though yet of Hamlet our dear brother's death the memory be green."]
    poem = "From fairest creatures we desire increase,\nThat thereby beauty's rose might never die.\n\nShort.\n"
    assert fetch.drama_documents(poem) == ["From fairest creatures we desire increase, That thereby beauty's rose "
                                           "might never die."]
