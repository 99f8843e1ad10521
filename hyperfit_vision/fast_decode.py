"""Image completion with a preallocated KV cache: our own ImageGPT forward over the HF module weights.

HF's generate (and our core loop over DynamicCache) grows every layer's keys and values with torch.cat at
each step, so a 768-token completion copies the whole cache 768 times and pays HF's per-call overhead (mask
building, cache bookkeeping, output dataclasses). Here each layer writes its new key/value into one
(layers, 2, batch, heads, max_len, head_dim) buffer in place and attends over the filled prefix with SDPA.
The math is HF's own (RMS-style ImageGPTLayerNorm, Conv1D = addmm with (in, out) weights, the same
attention scale), so greedy tokens match HF's; tests check that on tiny models.

Step modes: "slice" attends over buffer[:pos+1] (cheapest on CPU); "masked" attends over the whole buffer
with a position mask, so every step has the same shapes and addresses: that is what "graph" captures once
as a CUDA graph and replays per token (CUDA only; the masked math is tested on CPU, the capture is not).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from hyperfit_core.decoding import DecodingConfig, build_processors
from hyperfit_core.errors import HyperfitError

MODES = ("auto", "slice", "masked", "graph")


def _rms(x, norm):
    # ImageGPTLayerNorm: not mean-centred, no bias
    return x / torch.sqrt(torch.mean(torch.square(x), dim=-1, keepdim=True) + norm.eps) * norm.weight


def _conv1d(x, conv):
    # HF Conv1D stores (in, out) weights and computes addmm; the same op keeps logits closest to HF's
    return torch.addmm(conv.bias, x.reshape(-1, x.shape[-1]), conv.weight).view(*x.shape[:-1], -1)


class StaticImageGPT:
    """KV buffers for up to `batch` sequences of `max_len` positions, plus prefill and one-token steps."""

    def __init__(self, model, batch: int, max_len: int):
        config = model.config
        if getattr(config, "add_cross_attention", False):
            raise HyperfitError("the fast decoder does not support ImageGPT with cross-attention")
        self.model, self.t = model, model.transformer
        self.heads = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.max_len = max_len
        self.upcast = bool(config.reorder_and_upcast_attn)
        self.scales = []
        for i in range(len(self.t.h)):
            scale = 1.0 / math.sqrt(self.head_dim) if config.scale_attn_weights else 1.0
            self.scales.append(scale / (i + 1) if config.scale_attn_by_inverse_layer_idx else scale)
        weight = self.t.wte.weight
        # zeros, not empty: masked steps multiply unfilled slots by a zero weight, and 0 * NaN would be NaN
        self.cache = torch.zeros(len(self.t.h), 2, batch, self.heads, max_len, self.head_dim,
                                 dtype=weight.dtype, device=weight.device)
        self._positions = torch.arange(max_len, device=weight.device)
        self._graphs: dict[int, tuple] = {}

    def _attend(self, i, q, keys, values, mask=None, causal=False):
        if self.upcast:  # HF computes these scores in fp32; so do we
            q, keys, values = q.float(), keys.float(), values.float()
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, is_causal=causal, scale=self.scales[i])
        return out.to(self.cache.dtype)

    def _forward(self, ids, start: int | None = None, pos: torch.Tensor | None = None):
        """Logits of the last position. `start` (an int): write ids at start.. and attend over the filled
        prefix; `pos` (a 1-element tensor): write one token there and attend over the whole masked buffer."""
        b, n = ids.shape
        cache = self.cache[:, :, :b]
        positions = self._positions[start:start + n] if pos is None else pos
        x = self.t.wte(ids) + self.t.wpe(positions)[None]
        mask = None if pos is None else (self._positions <= pos).view(1, 1, 1, -1)
        for i, block in enumerate(self.t.h):
            h = _rms(x, block.ln_1)
            q, k, v = _conv1d(h, block.attn.c_attn).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
            if pos is None:
                cache[i, 0, :, :, start:start + n] = k
                cache[i, 1, :, :, start:start + n] = v
                # a prefill starts at 0, so plain causal masking is right; one new token sees the whole prefix
                a = self._attend(i, q, cache[i, 0, :, :, :start + n], cache[i, 1, :, :, :start + n], causal=n > 1)
            else:
                cache[i, 0].index_copy_(2, pos, k)
                cache[i, 1].index_copy_(2, pos, v)
                a = self._attend(i, q, cache[i, 0], cache[i, 1], mask=mask)
            x = x + _conv1d(a.transpose(1, 2).reshape(b, n, -1), block.attn.c_proj)
            h = _conv1d(block.mlp.act(_conv1d(_rms(x, block.ln_2), block.mlp.c_fc)), block.mlp.c_proj)
            x = x + h
        return F.linear(_rms(x[:, -1], self.t.ln_f), self.model.lm_head.weight)

    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        return self._forward(ids, start=0)

    def step(self, token: torch.Tensor, position: int, mode: str) -> torch.Tensor:
        """Logits after feeding `token` (B,) at `position`."""
        if mode == "slice":
            return self._forward(token[:, None], start=position)
        if mode == "masked":
            return self._forward(token[:, None], pos=torch.tensor([position], device=token.device))
        graph, ids, pos, logits = self._graph(token.shape[0])
        ids.copy_(token[:, None])
        pos.fill_(position)
        graph.replay()
        return logits

    def _graph(self, b: int):
        """Capture one masked step for batch size `b` (CUDA only); inputs and outputs live at fixed addresses."""
        if b not in self._graphs:
            device = self.cache.device
            ids = torch.zeros(b, 1, dtype=torch.long, device=device)
            # warm-up and capture write into the last slot: a real step overwrites it before it is ever attended
            pos = torch.full((1,), self.max_len - 1, dtype=torch.long, device=device)
            stream = torch.cuda.Stream(device)
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(stream):
                for _ in range(2):  # lets cuBLAS / SDPA pick and allocate their kernels outside the capture
                    self._forward(ids, pos=pos)
            torch.cuda.current_stream(device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                logits = self._forward(ids, pos=pos)
            self._graphs[b] = (graph, ids, pos, logits)
        return self._graphs[b]


def _resolve_mode(mode: str, device: torch.device) -> str:
    if mode not in MODES:
        raise HyperfitError(f"unknown decode mode {mode!r}: use one of {', '.join(MODES)}")
    if mode == "graph" and device.type != "cuda":
        raise HyperfitError("CUDA-graph decoding needs a CUDA device; use mode 'slice' or 'auto'")
    return "slice" if mode == "auto" else mode


def _fit_batch(batch_size: int, n_layer: int, per_token: int, max_len: int, dtype, device) -> int:
    """Shrink the batch so the KV buffer takes at most ~70% of free CUDA memory (ImageGPT-Large in fp32 needs
    ~0.6 GB per sequence, so 256 sequences would not fit an 80 GB card)."""
    if device.type != "cuda":
        return batch_size
    per_sequence = n_layer * 2 * per_token * max_len * torch.finfo(dtype).bits // 8
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, min(batch_size, int(0.7 * free) // per_sequence))


@torch.no_grad()
def _generate_batch(engine, prompt, max_new_tokens, config, processors, generator, mode):
    for processor in processors:
        if hasattr(processor, "reset"):
            processor.reset()
    b, p = prompt.shape
    # the whole output is preallocated too; processors see a view of the tokens so far (prompt included)
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
        if i + 1 < max_new_tokens:
            logits = engine.step(next_token, length, mode)
    return tokens


@torch.no_grad()
def fast_generate_tokens(model, prompts: torch.Tensor, max_new_tokens: int, config: DecodingConfig | None = None,
                         processors=(), batch_size: int = 256, progress: bool = True,
                         mode: str = "auto") -> torch.Tensor:
    """`hyperfit_core.decoding.generate_tokens` for ImageGPT: same arguments, processors, seeding and output."""
    config = config or DecodingConfig()
    prompts = torch.as_tensor(prompts, dtype=torch.long)
    if prompts.ndim != 2 or prompts.shape[1] == 0:
        raise HyperfitError("prompts must be a non-empty 2-D (count, length) array of token ids")
    if max_new_tokens < 1:
        raise HyperfitError("max_new_tokens must be at least 1")
    # the last new token is never fed back, so the buffer needs prompt + new - 1 positions
    max_len = prompts.shape[1] + max_new_tokens - 1
    limit = model.config.n_positions
    if max_len > limit:
        raise HyperfitError(f"a {prompts.shape[1]}-token prompt plus {max_new_tokens} new tokens needs "
                            f"{max_len} positions; the model has {limit}")
    weight = model.transformer.wte.weight
    device = weight.device
    mode = _resolve_mode(mode, device)
    batch_size = _fit_batch(min(batch_size, len(prompts)), model.config.n_layer, model.config.n_embd, max_len,
                            weight.dtype, device)
    was_training = model.training
    model.eval()
    processors = build_processors(config, processors)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    engine = StaticImageGPT(model, batch_size, max_len)
    out = []
    try:
        for first in tqdm(range(0, len(prompts), batch_size), disable=not progress,
                          desc=f"fast decode {config.name}", unit="batch"):
            batch = prompts[first:first + batch_size].to(device)
            out.append(_generate_batch(engine, batch, max_new_tokens, config, processors, generator, mode).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def fast_complete_images(model, tokens: torch.Tensor, prefix_rows: int, side: int,
                         decoding: DecodingConfig | None = None, processors=(), batch_size: int = 256,
                         progress: bool = True, mode: str = "auto") -> torch.Tensor:
    """`hyperfit_vision.complete.complete_images` on the static-cache engine: (N, 1 + side*side) tokens with
    SOS in, (N, side*side) pixel tokens out, the first prefix_rows*side of them the prompt's."""
    if tokens.ndim != 2 or tokens.shape[1] != 1 + side * side:
        raise HyperfitError(f"expected (N, {1 + side * side}) tokens with SOS, got {tuple(tokens.shape)}")
    if not 1 <= prefix_rows < side:
        raise HyperfitError(f"the prefix must be between 1 and {side - 1} rows of a {side}-row image, "
                            f"got {prefix_rows}")
    prompt = tokens[:, :1 + prefix_rows * side]
    out = fast_generate_tokens(model, prompt, side * side - prefix_rows * side, decoding, processors=processors,
                               batch_size=batch_size, progress=progress, mode=mode)
    return out[:, 1:]
