"""Batched, KV-cached decoding shared by every modality: greedy, temperature, top-k, top-p, plus any
`transformers` LogitsProcessor (the citation blocker is one)."""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm
from transformers import (DynamicCache, LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper,
                          TopPLogitsWarper)

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


def _cache_kwarg(model) -> str:
    """transformers 5 renamed `past_key_values` to `cache`; accept either."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def model_max_positions(model) -> int | None:
    """The model's position limit from its HF config, or None when it has no config (a plain wrapper)."""
    config = getattr(model, "config", None)
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


@torch.no_grad()
def _generate_batch(model, prompt, max_new_tokens, config, processors, generator):
    for processor in processors:
        if hasattr(processor, "reset"):
            processor.reset()
    cache = DynamicCache()
    key = _cache_kwarg(model)
    tokens = prompt
    logits = model(input_ids=prompt, use_cache=True, **{key: cache}).logits[:, -1, :]
    for i in range(max_new_tokens):
        scores = processors(tokens, logits.float())
        if config.strategy == "greedy":
            next_token = scores.argmax(dim=-1)
        else:
            probs = torch.softmax(scores, dim=-1)
            next_token = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)
        if i + 1 < max_new_tokens:
            logits = model(input_ids=next_token[:, None], use_cache=True, **{key: cache}).logits[:, -1, :]
    return tokens


@torch.no_grad()
def generate_tokens(model, prompts: torch.Tensor, max_new_tokens: int, config: DecodingConfig | None = None,
                    processors=(), batch_size: int = 64, progress: bool = True,
                    precision: str = "auto") -> torch.Tensor:
    """Continue each row of `prompts` (all the same length) by `max_new_tokens`; returns prompt + new tokens.

    Runs on the model's device in batches; sampling is seeded once per call, so a call is reproducible.
    precision: "auto" (bf16 autocast on CUDA, fp32 elsewhere), "fp32" or "bf16" (autocast over the model's
    own weights; the logits the processors see are fp32 either way).
    """
    config = config or DecodingConfig()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise HyperfitError(f"batch size must be a positive integer, got {batch_size!r}")
    prompts = torch.as_tensor(prompts, dtype=torch.long)
    if prompts.ndim != 2 or prompts.shape[1] == 0:
        raise HyperfitError("prompts must be a non-empty 2-D (count, length) array of token ids")
    limit = model_max_positions(model)
    if limit is not None and prompts.shape[1] + max_new_tokens - 1 > limit:
        raise HyperfitError(f"a {prompts.shape[1]}-token prompt plus {max_new_tokens} new tokens needs "
                            f"{prompts.shape[1] + max_new_tokens - 1} positions; the model has {limit}")
    device = next(model.parameters()).device
    amp_dtype = decode_dtype(precision, device)
    was_training = model.training
    model.eval()
    processors = build_processors(config, processors)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    out = []
    for first in tqdm(range(0, len(prompts), batch_size), disable=not progress, desc=f"decode {config.name}",
                      unit="batch"):
        batch = prompts[first:first + batch_size].to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype != torch.float32):
            out.append(_generate_batch(model, batch, max_new_tokens, config, processors, generator).cpu())
    model.train(was_training)
    return torch.cat(out)
