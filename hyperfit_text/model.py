"""Load a causal LM and its tokenizer (hub id, local folder or GGUF file) and fix the tokenizer's conventions.

Every sequence hyperfit_text builds is `[BOS, t1, t2, ...]` with BOS exactly once. Tokenizers disagree on
whether they add BOS themselves (Llama's do, GPT-2's and a Gemma GGUF's do not), so text is always encoded
with `add_special_tokens=False` and BOS is prepended here by hand; `adds_bos` records what the tokenizer
would have done, for the run's config. Special-token strings inside the text ("<bos>", "<|endoftext|>") are
encoded as plain text (`split_special_tokens=True`), so a BOS id can never appear in the body.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch

from hyperfit_core.device import resolve_device
from hyperfit_core.errors import HyperfitError

_ENCODE_CHUNK = 512  # documents per tokenizer call: large enough for the Rust batch path, small enough for memory


@dataclass
class TextModel:
    model: torch.nn.Module
    tokenizer: object  # a transformers tokenizer
    bos_id: int
    adds_bos: bool  # whether tokenizer("...") puts BOS first on its own (recorded, never relied on)
    source: str
    gguf_file: str | None = None

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without any special token (BOS is added by the caller, exactly once)."""
        out: list[list[int]] = []
        for first in range(0, len(texts), _ENCODE_CHUNK):
            batch = texts[first:first + _ENCODE_CHUNK]
            out.extend(self.tokenizer(batch, add_special_tokens=False, split_special_tokens=True,
                                      verbose=False)["input_ids"])
        return out

    def decode(self, ids, skip_special: bool = False) -> str:
        """The text of `ids`; with `skip_special` without the special tokens (for people to read)."""
        return self.tokenizer.decode(torch.as_tensor(ids).tolist(), skip_special_tokens=skip_special)

    def special_ids(self) -> frozenset[int]:
        """The ids `decode(..., skip_special=True)` leaves out: special tokens, named ones and added ones."""
        added = getattr(self.tokenizer, "added_tokens_decoder", {}) or {}
        return frozenset(self.tokenizer.all_special_ids) | {i for i, token in added.items() if token.special}

    def with_bos(self, ids: torch.Tensor) -> torch.Tensor:
        """[count, length] body ids -> [count, 1 + length] with BOS in column 0."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        return torch.cat([torch.full((len(ids), 1), self.bos_id, dtype=torch.long), ids], dim=1)

    def describe(self) -> dict:
        return {"model": self.source, "gguf_file": self.gguf_file, "bos_id": self.bos_id,
                "bos_token": self.tokenizer.convert_ids_to_tokens(self.bos_id), "tokenizer_adds_bos": self.adds_bos,
                "pad_token": self.tokenizer.pad_token, "vocab_size": len(self.tokenizer)}


def split_gguf_path(model: str, gguf_file: str | None) -> tuple[str, str | None]:
    """`--model dir/file.gguf` is shorthand for `--model dir --gguf-file file.gguf`."""
    if gguf_file is None and model.lower().endswith(".gguf"):
        path = Path(model)
        if not path.is_file():
            raise HyperfitError(f"GGUF file not found: {model}")
        return str(path.parent), path.name
    return model, gguf_file


def _check_gguf_support(folder: str, gguf_file: str) -> None:
    # transformers dequantises GGUF weights with the `gguf` package and places them with `accelerate`;
    # without them it fails deep inside from_pretrained, so say what to install first.
    missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise HyperfitError(f"loading a GGUF file needs the {' and '.join(missing)} package(s): "
                            f"pip install {' '.join(missing)}  (or pip install 'hyperfit[gguf]')")
    if Path(folder).is_dir() and _local_gguf(folder, gguf_file) is None:
        raise HyperfitError(f"GGUF file {gguf_file} not found in {folder}")


def _local_gguf(folder: str, gguf_file: str) -> Path | None:
    """The GGUF file on disk (inside `folder`, or a path of its own); None for a file of a hub repository."""
    for path in (Path(folder) / gguf_file, Path(gguf_file)):
        if path.is_file():
            return path
    return None


def _gguf_damage(folder: str, gguf_file: str) -> str | None:
    """Why a local GGUF file that failed to load is unreadable, when the gguf package's reader (llama.cpp's own)
    cannot read it either; None when it reads, so the load failed for another reason. A file cut short would
    otherwise surface as a struct.error traceback or a numpy reshape error."""
    import gguf

    path = _local_gguf(folder, gguf_file)
    if path is None:  # a hub file: nothing local to inspect
        return None
    try:
        gguf.GGUFReader(str(path))
    except Exception:  # whatever the reference reader trips on, the bytes are not a whole GGUF file
        return (f"GGUF file {path} is truncated or corrupt: the gguf package cannot read its "
                f"{path.stat().st_size} bytes as GGUF; copy or download it again")
    return None


def _check_source(model: str) -> None:
    """A path-like name that does not exist is a typo, not a hub id: say so instead of trying the network."""
    # hub ids are "name" or "org/name" and may hold dots ("Qwen/Qwen2.5-0.5B"), so only the shape decides
    looks_local = model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model
    if looks_local and not Path(model).expanduser().exists():
        raise HyperfitError(f"model folder not found: {model}")


def _dense_gguf_kwargs() -> dict:
    """Ask transformers to unpack every GGUF weight into a plain float tensor: packed GGUF blocks cannot be
    trained (their quantizer says so) and a model holding them cannot be saved with save_pretrained."""
    try:
        from transformers import GgufConfig
    except ImportError:  # older transformers always dequantise GGUF weights
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def _drop_gguf_quantizer(model) -> None:
    """Once the weights are dense floats the GGUF quantizer is only a label, but it makes save_pretrained
    refuse ("not serializable"); remove it so the hyperfitted model saves as an ordinary checkpoint."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return
    if any(not param.is_floating_point() for param in model.parameters()):
        raise HyperfitError("the GGUF weights stayed packed after loading; this transformers version cannot "
                            "unpack them for training")
    quantizer.remove_quantization_config(model)


def detect_adds_bos(tokenizer, bos_id: int) -> bool:
    ids = tokenizer("hello world")["input_ids"]
    return bool(ids) and ids[0] == bos_id


def prepare_tokenizer(tokenizer) -> int:
    """Pick the BOS id (falling back to EOS, as GPT-2 uses <|endoftext|> for both) and set a pad token."""
    bos_id = tokenizer.bos_token_id
    if bos_id is None:
        bos_id = tokenizer.eos_token_id
    if bos_id is None:
        raise HyperfitError("the tokenizer has neither a BOS nor an EOS token, so sequences cannot be started")
    if tokenizer.pad_token is None:
        # decoding never pads (all prompts have the same length), but a saved tokenizer without a pad token
        # breaks batched use downstream; EOS is the usual stand-in
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else \
            tokenizer.convert_ids_to_tokens(bos_id)
    return int(bos_id)


def load_text_model(model: str, gguf_file: str | None = None, device: str = "cpu",
                    placement: dict | None = None) -> TextModel:
    """Load model + tokenizer with fp32 weights whatever the checkpoint's dtype (training and decoding autocast
    to bf16 on CUDA themselves), on `device` ("auto": cuda when available), or split over devices by
    `placement` (hyperfit_core.device_map.load_kwargs: transformers' device_map / max_memory / offload folder)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, gguf_file = split_gguf_path(model, gguf_file)
    _check_source(model)
    kwargs, model_kwargs = {}, {}
    if gguf_file is not None:
        _check_gguf_support(model, gguf_file)
        kwargs["gguf_file"] = gguf_file
        model_kwargs = _dense_gguf_kwargs()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, **kwargs)
        loaded = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32, **kwargs, **model_kwargs,
                                                      **(placement or {}))
    except Exception as exc:
        damage = _gguf_damage(model, gguf_file) if gguf_file is not None else None
        if damage is not None:
            raise HyperfitError(damage) from None
        if not isinstance(exc, (OSError, ValueError, KeyError)):
            raise
        # OSError: missing files / unreachable hub; ValueError/KeyError: not a causal LM or unknown architecture
        raise HyperfitError(f"cannot load causal LM {model!r}"
                            f"{f' (GGUF {gguf_file})' if gguf_file else ''}: {str(exc).splitlines()[0]}") from None
    if not hasattr(loaded, "get_output_embeddings") or loaded.get_output_embeddings() is None:
        raise HyperfitError(f"{model} has no language-modelling head")
    if gguf_file is not None:
        _drop_gguf_quantizer(loaded)
    dispatched = bool(placement) and bool(getattr(loaded, "hf_device_map", None))
    if not dispatched and any(p.is_floating_point() and p.dtype != torch.float32 for p in loaded.parameters()):
        # dtype=float32 is what was asked for; some Auto load paths have ignored it (transformers #46459)
        loaded.float()
    bos_id = prepare_tokenizer(tokenizer)
    if loaded.generation_config is not None and loaded.generation_config.pad_token_id is None:
        loaded.generation_config.pad_token_id = tokenizer.pad_token_id
    if not dispatched:  # a device-mapped model stays where its map put each layer
        loaded = loaded.to(resolve_device(device))
    return TextModel(loaded.eval(), tokenizer, bos_id, detect_adds_bos(tokenizer, bos_id), model, gguf_file)


def tokenizer_fingerprint(tokenizer) -> str:
    """Short hash of the vocabulary: generations and prompts from different tokenizers must not be mixed."""
    import hashlib
    import json

    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()[:16]
