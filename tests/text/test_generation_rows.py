"""What `text generate` writes for people to read: NAME.generations.jsonl's `display` texts (issue 28)."""

import torch
from transformers import AutoTokenizer

from hyperfit_core.formats import read_jsonl
from hyperfit_core.rundir import RunDir
from hyperfit_text.generation import generation_rows, save_generations
from hyperfit_text.model import TextModel
from hyperfit_text.splits import HeldOut


def word_model(tiny_llama_dir) -> TextModel:
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    return TextModel(model=None, tokenizer=tokenizer, bos_id=tokenizer.bos_token_id, adds_bos=True, source="tiny")


def ids(model: TextModel, text: str) -> list[int]:
    return model.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_display_texts_drop_special_tokens_and_cut_the_reference_to_the_continuation(tiny_llama_dir, tmp_path):
    model = word_model(tiny_llama_dir)
    eos = model.tokenizer.eos_token_id
    context = ids(model, "the river city")
    continuation = ids(model, "stone light") + [eos, model.bos_id] + ids(model, "quiet")  # 5 tokens, 2 special
    reference = ids(model, "old new green bright small large north south")  # 8 tokens
    held = HeldOut(torch.tensor([context]), torch.tensor([reference]), torch.tensor([0]))
    row = generation_rows(model, held, torch.tensor([continuation]))[0]
    assert "</s>" in row["continuation"] and "<s>" in row["continuation"]  # the full decode keeps everything
    assert row["display"] == {"context": "the river city", "continuation": "stone light quiet",
                              "reference": "old new green bright small"}  # cut to the continuation's 5 tokens
    assert row["reference"] == "old new green bright small large north south"
    assert row["tokens"] == {"context": 3, "continuation": 5, "reference": 8}
    assert row["special_tokens"] == {"context": 0, "continuation": 2, "reference": 0}

    run = RunDir.create(tmp_path, "text-generate")
    save_generations(run, "greedy", model, held, torch.tensor([continuation]))
    assert read_jsonl(run.path / "greedy.generations.jsonl") == [row]
    assert (run.path / "greedy.generations.safetensors").is_file()


def test_added_special_tokens_are_counted_as_the_decoder_drops_them(tiny_llama_dir):
    model = word_model(tiny_llama_dir)
    model.tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_end|>"]})
    marker = model.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert marker in model.special_ids() and model.decode([marker], skip_special=True) == ""
