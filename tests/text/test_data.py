import json

import pytest

from hyperfit_core.dataset_names import parse_dataset_spec
from hyperfit_core.errors import HyperfitError
from hyperfit_text.data import TextSource


def test_txt_documents_are_split_at_blank_lines(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("First doc line one.\nline two.\n\n\n  \nSecond doc.\n\nThird.\n", encoding="utf-8")
    assert TextSource(str(path)).load() == ["First doc line one.\nline two.", "Second doc.", "Third."]


def test_jsonl_reads_the_text_field_and_skips_blank_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join([json.dumps({"text": "one", "id": 1}), "", json.dumps({"text": "  "}),
                               json.dumps({"body": "two", "text": "three"})]), encoding="utf-8")
    assert TextSource(str(path)).load() == ["one", "three"]
    with pytest.raises(HyperfitError, match="a.jsonl:1: no field 'body'"):
        TextSource(str(path), text_field="body").load()


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("   \n\n  \n", "is empty"),
])
def test_empty_txt_is_an_error(tmp_path, content, message):
    path = tmp_path / "empty.txt"
    path.write_text(content)
    with pytest.raises(HyperfitError, match=message):
        TextSource(str(path)).load()


@pytest.mark.parametrize("lines, message", [
    (["{not json"], "not a JSON line"),
    ([json.dumps({"body": "x"})], "no field 'text'"),
    ([json.dumps({"text": 3})], "is not a string"),
    ([json.dumps({"text": ""})], "holds no text"),
])
def test_bad_jsonl_is_an_error(tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines))
    with pytest.raises(HyperfitError, match=message):
        TextSource(str(path)).load()


def test_missing_file_and_unsupported_type(tmp_path):
    with pytest.raises(HyperfitError, match="text file not found"):
        TextSource(str(tmp_path / "nope.txt")).load()
    other = tmp_path / "a.csv"
    other.write_text("x")
    with pytest.raises(HyperfitError, match="unsupported text file type"):
        TextSource(str(other)).load()


def test_dataset_spec_parsing():
    assert parse_dataset_spec("wikitext:wikitext-103-raw-v1:train") == ("wikitext", "wikitext-103-raw-v1", "train")
    assert parse_dataset_spec("imdb::test") == ("imdb", None, "test")
    assert parse_dataset_spec("imdb") == ("imdb", None, "train")
    assert parse_dataset_spec("uoft-cs/cifar10", "test") == ("uoft-cs/cifar10", None, "test")
    assert parse_dataset_spec("uoft-cs/cifar10::train", "test") == ("uoft-cs/cifar10", None, "train")
    with pytest.raises(HyperfitError, match="name\\[:config"):
        parse_dataset_spec("a:b:c:d")


def test_unknown_dataset_is_a_clear_error(offline_hub):
    with pytest.raises(HyperfitError, match="cannot load dataset 'no_such_dataset_hyperfit'"):
        TextSource("no_such_dataset_hyperfit:cfg:train").load()


def test_jsonl_texts_holding_unicode_line_separators_stay_whole(tmp_path):
    """U+2028 / U+0085 inside a JSON string are not line ends (str.splitlines() broke the file at them)."""
    from hyperfit_text.prompts import prompts_from_file

    texts = ["one\u2028two three four", "five\x85six seven eight"]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps({"text": t, "prompt": t}, ensure_ascii=False) for t in texts) + "\n",
                    encoding="utf-8")
    assert TextSource(str(path)).load() == texts

    class WordModel:
        def encode(self, batch):
            return [list(range(len(t.split()))) for t in batch]

    held = prompts_from_file(path, WordModel(), context=3)
    assert held.contexts.shape == (2, 3) and held.starts.tolist() == [1, 2]


def test_a_txt_prompt_holding_unicode_line_separators_is_one_prompt(tmp_path):
    """One prompt a line means a line ended by "\\n" (or "\\r\\n"): a prompt holding U+2028 / U+0085 / U+2029 (web
    text copied into a file) stays one prompt, where str.splitlines() silently made it two."""
    from hyperfit_text.prompts import prompts_from_file

    class WordModel:
        def encode(self, batch):
            return [list(range(len(t.split()))) for t in batch]

    path = tmp_path / "p.txt"
    path.write_bytes("one\u2028two three four\r\n\nfive\x85six seven\u2029eight\n".encode("utf-8"))
    held = prompts_from_file(path, WordModel(), context=3)
    assert held.contexts.shape == (2, 3) and held.starts.tolist() == [1, 3]
