"""Batched, KV-cached decoding shared by every modality: greedy, temperature, top-k, top-p, plus any
`transformers` LogitsProcessor (the citation blocker is one).

One loop (`decode`) over an engine with prefill / step (`DecodeEngine`, after nanochat's Engine): the loop owns
the processors, greedy / seeded sampling, batching, progress, autocast and the position check; an engine owns
its KV cache and forward. `HFCacheEngine` runs any transformers causal LM over its DynamicCache;
hyperfit_vision.fast_decode.StaticImageGPT is ImageGPT over a preallocated cache (and CUDA graphs)."""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import asdict, dataclass
from typing import Protocol

import torch
from tqdm.auto import tqdm
from transformers import (DynamicCache, LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper,
                          TopPLogitsWarper)

from hyperfit_core.device_map import input_device
from hyperfit_core.errors import HyperfitError
from hyperfit_core.options import PRECISIONS, auto_precision


@dataclass
class DecodingConfig:
    """`greedy` takes the argmax; `sample` draws from the (warped) distribution with a seeded generator."""

    strategy: str = "greedy"
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int = 0

    def __post_init__(self):
        if self.strategy not in ("greedy", "sample"):
            raise HyperfitError(f"unknown decoding strategy {self.strategy!r}: use greedy or sample")
        if self.temperature <= 0:
            raise HyperfitError("temperature must be positive")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise HyperfitError("top-p must be in (0, 1]")
        if self.top_k is not None and self.top_k < 1:
            raise HyperfitError("top-k must be at least 1")

    @classmethod
    def paper_top_p(cls, seed: int = 0) -> "DecodingConfig":
        """The paper's sampling baseline: nucleus p 0.9, temperature 0.7, top-k 50."""
        return cls(strategy="sample", temperature=0.7, top_k=50, top_p=0.9, seed=seed)

    @property
    def name(self) -> str:
        if self.strategy == "greedy":
            return "greedy"
        parts = [f"T{self.temperature:g}"]
        if self.top_k:
            parts.append(f"k{self.top_k}")
        if self.top_p:
            parts.append(f"p{self.top_p:g}")
        return "sample-" + "-".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)


def build_processors(config: DecodingConfig, extra=()) -> LogitsProcessorList:
    """Blockers first (they forbid tokens), then the sampling warpers in HF's order."""
    processors = LogitsProcessorList(extra)
    if config.strategy == "sample":
        if config.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(config.temperature))
        if config.top_k:
            processors.append(TopKLogitsWarper(config.top_k))
        if config.top_p is not None and config.top_p < 1.0:
            processors.append(TopPLogitsWarper(config.top_p))
    return processors


def decode_dtype(precision: str, device: torch.device) -> torch.dtype:
    """Compute dtype of decoding: "auto" is bf16 on CUDA and fp32 elsewhere; "fp32" and "bf16" are explicit.
    Models keep fp32 weights either way (the bf16 paths autocast or cast a copy)."""
    if precision not in PRECISIONS:
        raise HyperfitError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return torch.bfloat16 if auto_precision(precision, torch.device(device).type) == "bf16" else torch.float32


def model_max_positions(model) -> int | None:
    """The model's position limit from its HF config, or None when it has no config (a plain wrapper)."""
    config = getattr(model, "config", None)
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def positions_needed(prompt_len: int, max_new_tokens: int) -> int:
    """The model reads the prompt and every new token but the last (which is only predicted)."""
    return prompt_len + max_new_tokens - 1


def check_request(prompts, max_new_tokens: int, limit: int | None) -> torch.Tensor:
    """The prompts as a (count, length) long tensor, once they and `max_new_tokens` fit `limit` positions."""
    prompts = torch.as_tensor(prompts, dtype=torch.long)
    if prompts.ndim != 2 or prompts.shape[1] == 0:
        raise HyperfitError("prompts must be a non-empty 2-D (count, length) array of token ids")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise HyperfitError(f"max_new_tokens must be an integer of at least 1, got {max_new_tokens!r}")
    needed = positions_needed(prompts.shape[1], max_new_tokens)
    if limit is not None and needed > limit:
        raise HyperfitError(f"a {prompts.shape[1]}-token prompt plus {max_new_tokens} new tokens needs "
                            f"{needed} positions; the model has {limit}")
    return prompts


def check_batch_size(batch_size, auto: bool = False) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise HyperfitError(f"batch size must be a positive integer{' (or None for auto)' if auto else ''}, "
                            f"got {batch_size!r}")


class DecodeEngine(Protocol):
    """What `decode` runs on: the KV cache of one batch and the forward over it (nanochat's model with its
    KVCache; `decode` plays nanochat's Engine.generate).

    `prefill` starts a batch (it resets the cache): it feeds (B, P) ids at positions 0..P-1, B <= max_batch,
    and returns the (B, vocab) logits of the last position. `step` feeds (B,) tokens at the next position and
    returns their logits. The loop runs prefill and steps under autocast to `autocast_dtype` (fp32: autocast
    off); None leaves precision to the engine (it computes in its own dtype)."""

    model: torch.nn.Module  # put in eval mode while decoding, handed back in the mode it came in
    device: torch.device  # where the prompts go and the sampling generator lives
    max_batch: int  # sequences per prefill: the loop's batch size
    max_positions: int | None  # positions one sequence may use; None: no known limit
    autocast_dtype: torch.dtype | None

    def prefill(self, ids: torch.Tensor) -> torch.Tensor: ...

    def step(self, token: torch.Tensor) -> torch.Tensor: ...


class HFCacheEngine:
    """Any transformers causal LM over its own DynamicCache (keys and values grow by torch.cat each step).
    `dtype`: the autocast dtype of the forward passes; the model keeps its own weights."""

    def __init__(self, model, batch_size: int, dtype: torch.dtype = torch.float32):
        check_batch_size(batch_size)
        self.model, self.max_batch, self.autocast_dtype = model, batch_size, dtype
        self.device = input_device(model)  # a device-mapped model's hooks move inputs on from there
        self.max_positions = model_max_positions(model)
        # transformers 5 renamed `past_key_values` to `cache`; accept either
        self._cache_kwarg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self._cache = None

    def _forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, use_cache=True, **{self._cache_kwarg: self._cache}).logits[:, -1, :]

    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        self._cache = DynamicCache()
        return self._forward(ids)

    def step(self, token: torch.Tensor) -> torch.Tensor:
        return self._forward(token[:, None])


def _decode_batch(engine: DecodeEngine, prompt, max_new_tokens, config, processors, generator) -> torch.Tensor:
    """One batch, prompt (B, P) on the engine's device -> (B, P + max_new_tokens) tokens."""
    for processor in processors:
        if hasattr(processor, "reset"):
            processor.reset()
    b, p = prompt.shape
    # the whole output is preallocated; processors see a view of the tokens so far (prompt included)
    tokens = torch.empty(b, p + max_new_tokens, dtype=torch.long, device=prompt.device)
    tokens[:, :p] = prompt
    logits = engine.prefill(prompt)
    for i in range(max_new_tokens):
        length = p + i
        scores = processors(tokens[:, :length], logits.float())
        if config.strategy == "greedy":
            next_token = scores.argmax(dim=-1)
        else:
            next_token = torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator).squeeze(1)
        tokens[:, length] = next_token
        if i + 1 < max_new_tokens:  # the last token is only predicted, never fed back
            logits = engine.step(next_token)
    return tokens


def _autocast(engine: DecodeEngine):
    dtype = engine.autocast_dtype
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(engine.device.type, dtype=dtype, enabled=dtype != torch.float32)


@torch.no_grad()
def decode(engine: DecodeEngine, prompts, max_new_tokens: int, config: DecodingConfig | None = None,
           processors=(), progress: bool = True) -> torch.Tensor:
    """The decode loop: continue each row of `prompts` (all the same length) by `max_new_tokens` on `engine`,
    in batches of engine.max_batch; returns prompt + new tokens, on the CPU.

    Sampling is seeded once per call (one generator on the engine's device), so a call is reproducible; the
    processors (a citation blocker, say) run before the sampling warpers, and are reset at every batch."""
    config = config or DecodingConfig()
    prompts = check_request(prompts, max_new_tokens, engine.max_positions)
    processors = build_processors(config, processors)
    generator = torch.Generator(device=engine.device).manual_seed(config.seed)
    model, was_training = engine.model, engine.model.training
    model.eval()
    out = []
    try:
        for first in tqdm(range(0, len(prompts), engine.max_batch), disable=not progress,
                          desc=f"decode {config.name}", unit="batch"):
            batch = prompts[first:first + engine.max_batch].to(engine.device)
            with _autocast(engine):
                out.append(_decode_batch(engine, batch, max_new_tokens, config, processors, generator).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def generate_tokens(model, prompts: torch.Tensor, max_new_tokens: int, config: DecodingConfig | None = None,
                    processors=(), batch_size: int = 64, progress: bool = True,
                    precision: str = "auto") -> torch.Tensor:
    """`decode` on any transformers causal LM (HFCacheEngine), on the model's device, `batch_size` at a time.

    precision: "auto" (bf16 autocast on CUDA, fp32 elsewhere), "fp32" or "bf16" (autocast over the model's
    own weights; the logits the processors see are fp32 either way)."""
    engine = HFCacheEngine(model, batch_size, decode_dtype(precision, input_device(model)))
    return decode(engine, prompts, max_new_tokens, config, processors, progress)
