"""Building a study: pairs, blinding, per-rater order and sides, attention checks, refusals."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from hyperfit_core.errors import HyperfitError
from hyperfit_rate.study import BuildOptions, Study, build_study

from .conftest import CONTEXTS, REFERENCES, text_run, write_completions, write_run


def test_text_study_pairs_every_condition_with_the_original(text_study):
    study = Study(text_study)
    kinds = [p["kind"] for p in study.data["pairs"]]
    assert kinds.count("vs-original") == 2 * 6 and "vs-condition" not in kinds
    # attention share 0.2 of all pairs: 12 real pairs -> 3 checks (3 / 15 = 0.2)
    assert kinds.count("attention") == 3
    for pair in study.data["pairs"]:
        if pair["kind"] == "vs-original":
            assert pair["b"] == "original" and pair["a"] in ("base-greedy", "hyperfit-greedy")
        if pair["kind"] == "attention":
            item = study.data["items"][str(pair["item"])]
            broken, original = item["versions"]["broken"], item["versions"]["original"]
            assert broken != original and sorted(broken.split()) == sorted(original.split())
    assert len(set(study.pair_ids)) == len(study.pair_ids)
    assert (text_study / "votes.sqlite").is_file()
    assert not list(text_study.parent.glob(".text-study.tmp-*"))  # built in a temporary folder, then renamed


def test_what_a_rater_sees_is_blinded(text_study):
    study = Study(text_study)
    for pair_id in study.pair_ids:
        shown = study.shown("ann", pair_id)
        assert set(shown) == {"id", "kind", "context", "left", "right"}
        text = json.dumps(shown)
        for secret in ("base-greedy", "hyperfit-greedy", "original", "broken", "vs-original", "attention"):
            assert secret not in text
        assert len(pair_id) >= 16 and pair_id.replace("-", "").replace("_", "").isalnum()


def test_order_and_sides_are_per_rater_and_deterministic(text_study):
    study, again = Study(text_study), Study(text_study)
    assert study.order_for("ann") == again.order_for("ann")  # the same when ann comes back
    assert sorted(study.order_for("ann")) == sorted(study.pair_ids)
    assert study.order_for("ann") != study.order_for("bob")
    sides_ann = [study.left_version("ann", p) for p in study.pair_ids]
    sides_bob = [study.left_version("bob", p) for p in study.pair_ids]
    assert sides_ann == [again.left_version("ann", p) for p in study.pair_ids]
    assert sides_ann != sides_bob and {"a", "b"} == set(sides_ann)  # randomised per pair and per rater
    shown = study.shown("ann", study.pair_ids[0])
    pair = study.pairs[study.pair_ids[0]]
    versions = study.data["items"][str(pair["item"])]["versions"]
    left = study.left_version("ann", study.pair_ids[0])
    assert shown["left"] == versions[pair[left]]


def test_options_sample_items_and_add_condition_pairs(tmp_path, text_runs):
    options = BuildOptions(seed=3, pairs_per_condition=2, condition_vs_condition=True, attention_share=0)
    made = build_study(tmp_path / "s", text_runs, options)
    kinds = [p["kind"] for p in made["pairs"]]
    assert kinds.count("vs-original") == 4 and kinds.count("vs-condition") == 2 and "attention" not in kinds
    items = {p["item"] for p in made["pairs"]}
    assert len(items) == 2  # the same sampled items for every condition
    again = build_study(tmp_path / "s2", text_runs, options)
    assert [(p["a"], p["b"], p["item"]) for p in again["pairs"]] == [(p["a"], p["b"], p["item"]) for p in made["pairs"]]
    # the same seed: each rater's order and sides are the same in the rebuild, though the ids are new
    first, second = Study(tmp_path / "s"), Study(tmp_path / "s2")

    def seen(study, rater):
        return [(study.pairs[p]["a"], study.pairs[p]["b"], study.pairs[p]["item"], study.left_version(rater, p))
                for p in study.order_for(rater)]
    assert seen(first, "ann") == seen(second, "ann") and seen(first, "ann") != seen(first, "bob")
    assert set(first.pair_ids).isdisjoint(second.pair_ids)


def test_image_study_writes_pngs_with_opaque_ids(image_study):
    study = Study(image_study)
    assert study.kind == "images"
    for pair in study.data["pairs"]:
        ids = [pair["context_image"], pair["a_image"], pair["b_image"]]
        assert len(set(ids)) == 3
        for image_id in ids:
            path = study.image_path(image_id)
            assert path.parent == image_study / "images" and path.is_file()
        with Image.open(study.image_path(pair["context_image"])) as context:
            pixels = np.asarray(context)
        assert pixels.shape == (8, 8, 3) and (pixels[2:] == 128).all()  # the hidden 75% is masked
    assert len({pid for p in study.data["pairs"] for pid in (p["a_image"], p["b_image"])}) == 2 * len(study.pairs)
    assert study.image_path("../study.json") is None and study.image_path("images") is None


def test_attention_images_are_visibly_noisy(image_study):
    study = Study(image_study)
    check = next(p for p in study.data["pairs"] if p["kind"] == "attention")
    with Image.open(study.image_path(check["a_image"])) as a, Image.open(study.image_path(check["b_image"])) as b:
        original, broken = np.asarray(a), np.asarray(b)
    assert (original[:2] == broken[:2]).all() and (original[2:] != broken[2:]).mean() > 0.5


@pytest.mark.parametrize("case, message", [
    ("missing", "run dir not found"),
    ("file", "not a run dir"),
    ("no-config", "no config.json"),
    ("wrong-kind", "`vision train` run with no"),
    ("mixed", "cannot mix text and image runs"),
    ("other-prompts", "continues other prompts"),
    ("other-images", "completes other images"),
])
def test_refusals(tmp_path, text_runs, image_runs, case, message):
    runs = {
        "missing": [tmp_path / "nope"],
        "file": [text_runs[0] / "config.json"],
        "no-config": [tmp_path],
        "wrong-kind": [write_run(tmp_path / "train", "vision train")],
        "mixed": [text_runs[0], image_runs[0]],
        "other-prompts": [text_runs[0], text_run(tmp_path, "other", ["x"] * 6,
                                                 contexts=[c + "!" for c in CONTEXTS], references=REFERENCES)],
        "other-images": [image_runs[0], write_run(tmp_path / "imgs", "vision complete")],
    }[case]
    if case == "other-images":
        write_completions(runs[1], "shifted", 5, source_index=np.arange(4, 8))
    with pytest.raises(HyperfitError, match=message):
        build_study(tmp_path / "study", runs)
    assert not (tmp_path / "study").exists()


def test_a_study_is_never_overwritten(text_study, text_runs):
    with pytest.raises(HyperfitError, match="already exists"):
        build_study(text_study, text_runs)
    with pytest.raises(HyperfitError, match="attention-share"):
        build_study(text_study.parent / "x", text_runs, BuildOptions(attention_share=0.7))


def test_an_unwritable_place_is_one_clear_error(tmp_path, text_runs):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(HyperfitError, match="cannot write the study"):
        build_study(blocker / "study", text_runs)


def test_generations_holding_unicode_line_separators_are_read_whole(tmp_path):
    """`text generate` writes U+2028 / U+0085 raw (json.dumps(ensure_ascii=False)); they are not line ends."""
    odd = [f"line\u2028separator and next\x85line {i}" for i in range(6)]
    made = build_study(tmp_path / "s", [text_run(tmp_path, "odd", odd)], BuildOptions(attention_share=0))
    assert {v for item in made["items"].values() for v in item["versions"].values()} >= set(odd)


def test_raters_see_display_texts_of_one_length_without_special_tokens(tmp_path):
    runs = [text_run(tmp_path, "chat", [f"fine {i}" for i in range(6)], special=2),
            text_run(tmp_path, "plain", [f"good {i}" for i in range(6)])]
    made = build_study(tmp_path / "s", runs, BuildOptions(attention_share=0))
    shown = json.dumps(made["items"], ensure_ascii=False)
    assert "<|im_end|>" not in shown and "and then some more" not in shown  # the reference cut to 16 tokens
    assert made["items"]["0"]["versions"]["original"] == REFERENCES[0]
    assert made["texts"] == {"tokens": 16, "items": 6, "with_special_tokens_not_shown": {
        "context": 0, "versions": {"original": 0, "chat": 6, "plain": 0}}}


@pytest.mark.parametrize("case, message", [
    ("no reference", "no reference continuation"),
    ("short reference", "a reference has 8 tokens, fewer than the 16-token continuations"),
    ("lengths differ", "continues by 32 tokens"),
    ("lengths differ in a file", "holds continuations of [16, 32] tokens"),
    ("older file", "needs display, tokens and special_tokens"),
])
def test_text_studies_that_would_not_be_blind_are_refused(tmp_path, case, message):
    greedy = text_run(tmp_path, "greedy", [f"g {i}" for i in range(6)])
    other = [f"o {i}" for i in range(6)]
    if case == "no reference":
        runs = [text_run(tmp_path, "own", other, references=[""] * 6, reference_tokens=0)]
    elif case == "short reference":
        runs = [text_run(tmp_path, "long", other, reference_tokens=8)]
    elif case == "lengths differ":
        runs = [greedy, text_run(tmp_path, "longer", other, new_tokens=32)]
    else:
        runs = [text_run(tmp_path, "other", other)]
        path = runs[0] / "other.generations.jsonl"
        rows = [json.loads(line) for line in path.read_text().split("\n") if line]
        if case == "older file":
            rows = [{key: row[key] for key in ("index", "context", "continuation", "reference")} for row in rows]
        else:
            rows[3]["tokens"]["continuation"] = 32
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(HyperfitError, match=re.escape(message)):
        build_study(tmp_path / "study", runs)
    assert not (tmp_path / "study").exists()
