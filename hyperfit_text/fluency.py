"""Fluency under an independent model: the perplexity of each continuation under a scoring model that did not
generate it, read beside the human references' own value under the same model.

What is scored: the sequence [BOS] + scorer.encode(context) + scorer.encode(continuation), the context and the
continuation each re-tokenised by the scorer on its own (the generator's tokens mean nothing to it), and only the
continuation's tokens are scored, each given everything before it:
    perplexity = exp( -1/n * sum_{j=1..n} log p_scorer(c_j | BOS, context, c_1..c_{j-1}) ),  n = continuation tokens.
Encoding the two parts apart keeps the scored tokens exactly the continuation's (joined, a token could straddle
the boundary) and treats every condition and the human reference alike. A context too long for the scorer loses
its oldest tokens first; a continuation is cut only when it alone does not fit (with a warning).

Closer to the human value is better, in both directions: degenerate repetition is very predictable, so a looping
text scores a perplexity far BELOW human text; the number is never read alone (see FLUENCY_NOTE).
"""

from __future__ import annotations

import numpy as np
import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_text.model import TextModel
from hyperfit_text.scorer import (check_texts, length_batches, model_device, position_limit, right_padded,
                                  scorer_identity, warn_cut)
from hyperfit_text.text_cache import cached_rows, text_key

LOGIT_BYTES = 2 ** 30  # fp32 logits held at once (gemma-3's 262k-token vocabulary: ~1000 positions)
FLUENCY_NOTE = ("Fluency is the perplexity of each continuation under {scorer}, a model that did not generate it, "
                "given its context; closer to the human references' value is better. Degenerate repetition is easy "
                "to predict and scores far below human text, so it is never read alone: only beside MAUVE and the "
                "diversity columns.")


def _check_pairs(contexts: list[str], continuations: list[str]) -> None:
    check_texts(continuations, "continuations")
    if len(contexts) != len(continuations):
        raise HyperfitError(f"{len(contexts)} contexts for {len(continuations)} continuations")
    check_texts(contexts, "contexts")


def _sequences(text_model: TextModel, contexts: list[str], continuations: list[str]):
    """([BOS] + context + continuation ids, context length) per pair, fitted to the scorer's positions."""
    limit = position_limit(text_model)
    cut, out = 0, []
    for index, (context, continuation) in enumerate(zip(text_model.encode(contexts), text_model.encode(continuations))):
        if not continuation:
            raise HyperfitError(f"continuation {index} is empty: it has no perplexity")
        if limit is not None and 1 + len(context) + len(continuation) > limit:
            if len(continuation) > limit - 1:
                cut += 1
                continuation = continuation[:limit - 1]
            context = context[len(context) - (limit - 1 - len(continuation)):]  # the newest context tokens that fit
        out.append(([text_model.bos_id, *context, *continuation], len(context)))
    if limit is not None:
        warn_cut(cut, len(out), "continuations", limit - 1)
    return out


@torch.inference_mode()
def continuation_nll(text_model: TextModel, contexts: list[str], continuations: list[str], batch_size: int = 8,
                     logit_bytes: int = LOGIT_BYTES) -> np.ndarray:
    """[len(continuations), 2] float64: (summed negative log-likelihood in nats, tokens scored) of each continuation
    given its context; one row per text, so the texts can be split over processes and the rows joined."""
    _check_pairs(contexts, continuations)
    sequences = _sequences(text_model, contexts, continuations)
    vocab = text_model.model.get_output_embeddings().weight.shape[0]
    device = model_device(text_model)
    out = np.zeros((len(sequences), 2), dtype=np.float64)
    for group in length_batches([len(s) for s, _ in sequences], batch_size, max(1, logit_bytes // (4 * vocab))):
        ids, mask = right_padded([sequences[i][0] for i in group], text_model.tokenizer.pad_token_id or 0, device)
        logits = text_model.model(input_ids=ids, attention_mask=mask).logits
        for row, index in enumerate(group):
            tokens, context_len = sequences[index]
            # position p predicts token p + 1: the continuation starts at 1 + context_len
            predicting = logits[row, context_len:len(tokens) - 1].float()
            targets = ids[row, context_len + 1:len(tokens)]
            log_probs = torch.log_softmax(predicting, dim=-1).gather(1, targets[:, None])
            out[index] = (-log_probs.sum().item(), len(targets))
        del logits
    return out


def fluency(text_model: TextModel, contexts: list[str], continuations: list[str], cache_dir=None,
            batch_size: int = 8) -> dict:
    """Per-text perplexities of `continuations` given `contexts` and their mean, each pair scored once per scoring
    model (rows already in `cache_dir` are read back)."""
    _check_pairs(contexts, continuations)
    limit = position_limit(text_model)
    identity = scorer_identity(text_model, fluency="continuation perplexity given its context", positions=limit)
    rows = cached_rows([text_key(context, continuation) for context, continuation in zip(contexts, continuations)],
                       lambda indices: continuation_nll(text_model, [contexts[i] for i in indices],
                                                        [continuations[i] for i in indices], batch_size),
                       cache_dir, "fluency", identity)
    per_text = np.exp(rows[:, 0] / rows[:, 1])
    return {"fluency_perplexity": float(per_text.mean()), "fluency_perplexity_median": float(np.median(per_text)),
            "fluency_perplexity_per_text": per_text.tolist(), "fluency_texts": len(per_text),
            "fluency_tokens": int(rows[:, 1].sum())}
