"""Tiny causal LMs with locally built tokenizers, saved with save_pretrained and loaded by path like real ones.

Two tokenizer conventions are covered: a Llama-like WordLevel tokenizer whose post-processor adds <s> itself,
and a GPT-2-like byte-level BPE whose <|endoftext|> is BOS and EOS and is never added automatically.
"""

import random

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers, decoders
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

WORDS = ("the a river city stone light quiet old new green bright small large north south winter summer "
         "people built walked found carried opened under over near across with from into before after "
         "bridge tower market garden road house field forest harbour valley ship bell song story").split()


def synthetic_documents(count: int, seed: int = 0) -> list[str]:
    """Random sentences from a small vocabulary; seeded, so every test sees the same text."""
    rng = random.Random(seed)
    docs = []
    for _ in range(count):
        sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))).capitalize() + "."
                     for _ in range(rng.randint(2, 6))]
        docs.append(" ".join(sentences))
    return docs


def long_documents(count: int, seed: int) -> str:
    """Documents of ~400 words (ten synthetic ones joined), so 32 + 256-token spans fit."""
    docs = synthetic_documents(count * 10, seed=seed)
    return "\n\n".join(" ".join(docs[i:i + 10]) for i in range(0, len(docs), 10)) + "\n"


@pytest.fixture(scope="session")
def corpus_txt(tmp_path_factory):
    """~3000 words, documents separated by blank lines."""
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_text("\n\n".join(synthetic_documents(80)) + "\n", encoding="utf-8")
    return path


def _word_level_tokenizer(docs) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(docs, trainers.WordLevelTrainer(special_tokens=["<unk>", "<s>", "</s>"]))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def _byte_bpe_tokenizer(docs) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(docs, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """A 2-layer Llama (hidden 32) with a WordLevel tokenizer that adds <s> on its own."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = _word_level_tokenizer(synthetic_documents(80))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_gpt2_text_dir(tmp_path_factory):
    """A 2-layer GPT-2 (128 positions) with a byte-level BPE tokenizer that never adds BOS."""
    path = tmp_path_factory.mktemp("tiny-gpt2-text")
    tokenizer = _byte_bpe_tokenizer(synthetic_documents(80))
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                               bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
                    ).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def offline_hub(monkeypatch):
    """Make dataset/hub look-ups fail at once instead of retrying an unreachable network for half a minute."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="session")
def tiny_gguf_path(tmp_path_factory):
    """A tiny random Llama written as an F32 GGUF with a GPT-2-style BPE vocabulary (llama.cpp's key names).

    Like the Gemma GGUFs, its tokenizer never adds BOS, so sequences must get it by hand.
    """
    import json

    import gguf
    import numpy as np

    tokenizer = _byte_bpe_tokenizer(synthetic_documents(80))
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = state["model"]["vocab"]
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    merges = [" ".join(m) if isinstance(m, list) else m for m in state["model"]["merges"]]
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokens), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                         max_position_embeddings=256))
    path = tmp_path_factory.mktemp("tiny-gguf") / "tiny-llama.F32.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(256)
    writer.add_embedding_length(32)
    writer.add_block_count(2)
    writer.add_feed_forward_length(64)
    writer.add_head_count(2)
    writer.add_head_count_kv(1)
    writer.add_rope_dimension_count(16)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if token == "<|endoftext|>" else 1 for token in tokens])  # 3 = control
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab["<|endoftext|>"])
    writer.add_eos_token_id(vocab["<|endoftext|>"])
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}
    for name, tensor in model.state_dict().items():
        if name not in fixed:  # model.layers.{i}.{module}.weight
            parts = name.split(".")
            fixed[name] = f"blk.{parts[2]}.{per_layer['.'.join(parts[3:-1])]}.weight"
        writer.add_tensor(fixed[name], tensor.numpy().astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
