"""MAUVE's text features: the mean-pooled last hidden state of the scoring model over each text's own tokens.

Each text is tokenised by the scoring model's tokenizer on its own, BOS first ([BOS, t1..tn], as every sequence
hyperfit_text builds); the features are the mean of the final layer's output (after the model's final norm) over
t1..tn. BOS is left out of the mean: its state is the same for every text, so it would only pull all features
towards one point. (mauve-text's own featuriser takes GPT-2-large's last-token state instead; the mean over the
text is what issue 26 asks for, and it does not hinge on where a text happens to stop.)
"""

from __future__ import annotations

import numpy as np
import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_text.model import TextModel
from hyperfit_text.scorer import (check_texts, length_batches, model_device, position_limit, right_padded,
                                  scorer_identity, warn_cut)
from hyperfit_text.text_cache import cached_rows, text_key

MAX_TOKENS = 1024  # tokens per text the features read (mauve-text's max_text_length default)


def feature_token_limit(text_model: TextModel, max_tokens: int = MAX_TOKENS) -> int:
    positions = position_limit(text_model)
    return min(max_tokens, positions - 1) if positions is not None else max_tokens


@torch.inference_mode()
def text_features(text_model: TextModel, texts: list[str], batch_size: int = 16,
                  max_tokens: int = MAX_TOKENS) -> np.ndarray:
    """[len(texts), hidden] float32 features, row i of texts[i] (one row per text, so the texts can be split over
    processes and the rows joined). Batches hold at most `batch_size` texts and batch_size * 256 positions."""
    check_texts(texts, "texts")
    limit = feature_token_limit(text_model, max_tokens)
    encoded = text_model.encode(texts)
    if any(not ids for ids in encoded):
        raise HyperfitError(f"text {next(i for i, ids in enumerate(encoded) if not ids)} is empty: it has no "
                            "features")
    warn_cut(sum(len(ids) > limit for ids in encoded), len(texts), "texts", limit)
    sequences = [[text_model.bos_id, *ids[:limit]] for ids in encoded]
    body = text_model.model.base_model  # the transformer without its LM head: the head's logits are not needed
    device = model_device(text_model)
    out = np.zeros((len(texts), text_model.model.config.hidden_size), dtype=np.float32)
    for group in length_batches([len(s) for s in sequences], batch_size, batch_size * 256):
        ids, mask = right_padded([sequences[i] for i in group], text_model.tokenizer.pad_token_id or 0, device)
        hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state.float()
        weights = mask.clone()
        weights[:, 0] = 0  # BOS
        pooled = (hidden * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)
        out[group] = pooled.cpu().numpy()
    return out


def cached_text_features(text_model: TextModel, texts: list[str], cache_dir=None, batch_size: int = 16,
                         max_tokens: int = MAX_TOKENS) -> np.ndarray:
    """text_features, each text computed once per scoring model: rows already in `cache_dir` are read back."""
    check_texts(texts, "texts")
    limit = feature_token_limit(text_model, max_tokens)
    identity = scorer_identity(text_model, features="mean-pooled last hidden state", max_tokens=limit)
    return cached_rows([text_key(text) for text in texts],
                       lambda indices: text_features(text_model, [texts[i] for i in indices], batch_size, limit),
                       cache_dir, "features", identity)
