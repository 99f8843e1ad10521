"""Image completion with a preallocated KV cache: our own ImageGPT forward over the HF module weights.

HF's generate (and hyperfit_core.decoding.HFCacheEngine over transformers' DynamicCache) grows every layer's
keys and values with torch.cat at each step, so a 768-token completion copies the whole cache 768 times and
pays HF's per-call overhead (mask building, cache bookkeeping, output dataclasses). Here each layer writes its
new key/value into one (layers, 2, batch, heads, max_len, head_dim) buffer in place and attends over the
filled prefix with SDPA.
The math is HF's own (RMS-style ImageGPTLayerNorm, Conv1D = addmm with (in, out) weights, the same
attention scale), so greedy tokens match HF's; tests check that on tiny models.

Step modes: "slice" attends over buffer[:pos+1] (cheapest on CPU); "masked" attends over a fixed window of
the buffer (the filled prefix rounded up to a multiple of WINDOW positions) with a position mask, so every
step within a window has the same shapes and addresses: that is what "graph" captures once per window as a
CUDA graph and replays per token (CUDA only; the masked math is tested on CPU, the capture in tests/gpu).
"auto" is graph on CUDA and slice elsewhere.

StaticImageGPT is a hyperfit_core.decoding.DecodeEngine: the core loop (`decode`) runs it, with the same
processors, seeding and batching as every other model.

Precision: "fp32" runs on the model's fp32 weights; "bf16" makes one bf16 copy of the matrix weights for the
engine (the model's own fp32 weights are untouched) and keeps the KV buffer in bf16, while the residual stream
and the layer norms stay in fp32, as under torch.autocast. "auto" is bf16 on CUDA and fp32 elsewhere.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from hyperfit_core.decoding import (DecodingConfig, check_batch_size, check_request, decode, decode_dtype,
                                    positions_needed)
from hyperfit_core.device import free_memory
from hyperfit_core.errors import HyperfitError

MODES = ("auto", "slice", "masked", "graph")
WINDOW = 64  # masked/graph steps attend over the filled prefix rounded up to this many positions
AUTO_BATCH_CAP = 256  # batch_size=None: at most this many sequences at once, fewer if memory says so
MEMORY_FRACTION = 0.7  # of the free memory the KV buffer (plus the bf16 weight copy) may take


def _rms(x, weight, eps):
    # ImageGPTLayerNorm: not mean-centred, no bias
    return x / torch.sqrt(torch.mean(torch.square(x), dim=-1, keepdim=True) + eps) * weight


def _conv1d(x, weight, bias):
    # HF Conv1D stores (in, out) weights and computes addmm; the same op keeps logits closest to HF's
    return torch.addmm(bias, x.reshape(-1, x.shape[-1]).to(weight.dtype), weight).view(*x.shape[:-1], -1)


class StaticImageGPT:
    """KV buffers for up to `batch` sequences of `max_len` positions, plus prefill and one-token steps: a
    hyperfit_core.decoding.DecodeEngine.

    `dtype` is the compute dtype of the matrix products and the KV buffer (default: the model's); `mode` is the
    step mode (see resolve_mode; under "auto" a failed graph capture falls back to slice with a warning)."""

    autocast_dtype = None  # the engine computes in its own dtype (bf16 weight copies), never under autocast

    def __init__(self, model, batch: int, max_len: int, dtype: torch.dtype | None = None, mode: str = "auto"):
        config = model.config
        if getattr(config, "add_cross_attention", False):
            raise HyperfitError("the fast decoder does not support ImageGPT with cross-attention")
        self.model, self.t = model, model.transformer
        self.device = model.transformer.wte.weight.device
        self.requested_mode, self.mode = mode, resolve_mode(mode, self.device)
        self.heads = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.max_batch, self.max_len = batch, max_len
        self.max_positions = max_len  # what the decode loop checks a request against: the buffer's length
        self.position = 0  # where the next step writes
        self.upcast = bool(config.reorder_and_upcast_attn)
        self.scales = []
        for i in range(len(self.t.h)):
            scale = 1.0 / math.sqrt(self.head_dim) if config.scale_attn_weights else 1.0
            self.scales.append(scale / (i + 1) if config.scale_attn_by_inverse_layer_idx else scale)
        weight = self.t.wte.weight
        self.dtype = dtype or weight.dtype

        def cast(tensor):  # the parameter itself when it already has the compute dtype (no copy)
            return tensor.detach() if tensor.dtype == self.dtype else tensor.detach().to(self.dtype)

        # (ln_1, eps_1, c_attn, attn c_proj, ln_2, eps_2, c_fc, act, mlp c_proj) per layer; norms stay as they are
        self.layers = [(b.ln_1.weight.detach(), b.ln_1.eps, (cast(b.attn.c_attn.weight), cast(b.attn.c_attn.bias)),
                        (cast(b.attn.c_proj.weight), cast(b.attn.c_proj.bias)), b.ln_2.weight.detach(), b.ln_2.eps,
                        (cast(b.mlp.c_fc.weight), cast(b.mlp.c_fc.bias)), b.mlp.act,
                        (cast(b.mlp.c_proj.weight), cast(b.mlp.c_proj.bias))) for b in self.t.h]
        self.head = cast(model.lm_head.weight)
        # zeros, not empty: masked steps multiply unfilled slots by a zero weight, and 0 * NaN would be NaN
        self.cache = torch.zeros(len(self.t.h), 2, batch, self.heads, max_len, self.head_dim,
                                 dtype=self.dtype, device=weight.device)
        self._positions = torch.arange(max_len, device=weight.device)
        self._graphs: dict[tuple[int, int], tuple] = {}
        self._pool = None

    def _attend(self, i, q, keys, values, mask=None, causal=False):
        if self.upcast:  # HF computes these scores in fp32; so do we
            q, keys, values = q.float(), keys.float(), values.float()
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, is_causal=causal, scale=self.scales[i])
        return out.to(self.cache.dtype)

    def _forward(self, ids, start: int | None = None, pos: torch.Tensor | None = None, window: int | None = None):
        """Logits of the last position. `start` (an int): write ids at start.. and attend over the filled
        prefix; `pos` (a 1-element tensor): write one token there and attend over the first `window` slots
        of the buffer with a mask (slots after `pos` are masked out)."""
        b, n = ids.shape
        cache = self.cache[:, :, :b]
        positions = self._positions[start:start + n] if pos is None else pos
        # the residual stream stays fp32 whatever the compute dtype (as under autocast: fp32 + bf16 -> fp32)
        x = (self.t.wte(ids) + self.t.wpe(positions)[None]).float()
        if pos is not None:
            window = window or self.max_len
            mask = (self._positions[:window] <= pos).view(1, 1, 1, -1)
        for i, (ln_1, eps_1, c_attn, proj, ln_2, eps_2, c_fc, act, mlp_proj) in enumerate(self.layers):
            q, k, v = _conv1d(_rms(x, ln_1, eps_1), *c_attn).view(b, n, 3, self.heads, self.head_dim) \
                .permute(2, 0, 3, 1, 4)
            if pos is None:
                cache[i, 0, :, :, start:start + n] = k
                cache[i, 1, :, :, start:start + n] = v
                # a prefill starts at 0, so plain causal masking is right; one new token sees the whole prefix
                a = self._attend(i, q, cache[i, 0, :, :, :start + n], cache[i, 1, :, :, :start + n], causal=n > 1)
            else:
                cache[i, 0].index_copy_(2, pos, k.to(self.dtype))
                cache[i, 1].index_copy_(2, pos, v.to(self.dtype))
                a = self._attend(i, q, cache[i, 0, :, :, :window], cache[i, 1, :, :, :window], mask=mask)
            x = x + _conv1d(a.transpose(1, 2).reshape(b, n, -1), *proj)
            x = x + _conv1d(act(_conv1d(_rms(x, ln_2, eps_2), *c_fc)), *mlp_proj)
        return F.linear(_rms(x[:, -1], self.t.ln_f.weight, self.t.ln_f.eps).to(self.dtype), self.head)

    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        """Start a batch: logits after ids (B, P) at positions 0..P-1 (graphs for B are captured first)."""
        self._capture_or_fall_back(ids.shape[0], ids.shape[1])
        self.position = ids.shape[1]
        return self._forward(ids, start=0)

    def step(self, token: torch.Tensor) -> torch.Tensor:
        """Logits after feeding `token` (B,) at the next position, in the engine's mode."""
        logits = self.step_at(token, self.position, self.mode)
        self.position += 1
        return logits

    def window(self, position: int) -> int:
        """Buffer slots a masked step at `position` attends over: position + 1 rounded up to WINDOW."""
        return min(self.max_len, (position // WINDOW + 1) * WINDOW)

    def step_at(self, token: torch.Tensor, position: int, mode: str) -> torch.Tensor:
        """Logits after feeding `token` (B,) at `position`, in step mode `mode`."""
        if mode == "slice":
            return self._forward(token[:, None], start=position)
        if mode == "masked":
            return self._forward(token[:, None], pos=torch.tensor([position], device=token.device),
                                 window=self.window(position))
        graph, ids, pos, logits = self._graph(token.shape[0], self.window(position))
        ids.copy_(token[:, None])
        pos.fill_(position)
        graph.replay()
        return logits

    def _capture_or_fall_back(self, b: int, first: int) -> None:
        """Capture the graphs a batch of `b` from position `first` will replay, before its prefill. Under
        "auto" a capture that fails (an unsupported kernel, say) falls back to the slice step with a warning;
        an explicit "graph" raises."""
        if self.mode != "graph":
            return
        try:
            for window in sorted({self.window(position) for position in range(first, self.max_len)}):
                self._graph(b, window)
        except RuntimeError as exc:
            if self.requested_mode != "auto":
                raise
            warnings.warn(f"CUDA-graph decoding failed ({str(exc).splitlines()[0]}); decoding with mode 'slice'")
            self.mode = "slice"

    def _graph(self, b: int, window: int):
        """Capture one masked step for batch `b` and attention window `window` (CUDA only); its inputs and
        outputs live at fixed addresses. All graphs share one memory pool: they never run concurrently and
        each keeps its own output alive."""
        key = (b, window)
        if key not in self._graphs:
            device = self.cache.device
            ids = torch.zeros(b, 1, dtype=torch.long, device=device)
            # warm-up and capture write into the window's last slot: a real step writes it before it is attended
            pos = torch.full((1,), window - 1, dtype=torch.long, device=device)
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            stream = torch.cuda.Stream(device)
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(stream):
                for _ in range(2):  # lets cuBLAS / SDPA pick and allocate their kernels outside the capture
                    self._forward(ids, pos=pos, window=window)
            torch.cuda.current_stream(device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                logits = self._forward(ids, pos=pos, window=window)
            self._graphs[key] = (graph, ids, pos, logits)
        return self._graphs[key]


def resolve_mode(mode: str, device: torch.device) -> str:
    """"auto" -> "graph" on CUDA, "slice" elsewhere; "graph" off CUDA is an error."""
    if mode not in MODES:
        raise HyperfitError(f"unknown decode mode {mode!r}: use one of {', '.join(MODES)}")
    if mode == "graph" and device.type != "cuda":
        raise HyperfitError("CUDA-graph decoding needs a CUDA device; use mode 'slice' or 'auto'")
    if mode == "auto":
        return "graph" if device.type == "cuda" else "slice"
    return mode


def plan_batch_size(model, count: int, prompt_len: int, max_len: int, batch_size: int | None,
                    dtype: torch.dtype, device: torch.device) -> int:
    """Sequences per engine batch. An int is taken as given (at most `count`, as there are no more); None
    (auto) takes min(count, AUTO_BATCH_CAP) shrunk so the KV buffer, the prefill's activations and a bf16
    weight copy fit in MEMORY_FRACTION of the free memory (ImageGPT-Large needs ~0.6 GB per sequence in
    fp32 and ~0.3 GB in bf16)."""
    if batch_size is not None:
        check_batch_size(batch_size, auto=True)
        return min(batch_size, count)
    want = min(count, AUTO_BATCH_CAP)
    free = free_memory(device)
    if free is None:
        return want
    config = model.config
    size = torch.finfo(dtype).bits // 8
    # K and V of every layer, plus a generous bound on one layer's prefill activations (MLP 4x, qkv 3x, fp32)
    per_sequence = config.n_layer * 2 * config.n_embd * max_len * size + prompt_len * config.n_embd * 16 * 4
    copies = sum(p.numel() for p in model.parameters() if p.dtype != dtype and p.ndim == 2) * size
    return max(1, min(want, int(MEMORY_FRACTION * free - copies) // per_sequence))


def fast_generate_tokens(model, prompts: torch.Tensor, max_new_tokens: int, config: DecodingConfig | None = None,
                         processors=(), batch_size: int | None = None, progress: bool = True,
                         mode: str = "auto", precision: str = "auto") -> torch.Tensor:
    """`hyperfit_core.decoding.generate_tokens` for ImageGPT: the core loop on a StaticImageGPT engine, with
    the same arguments, processors, seeding and output.

    batch_size: None (auto: up to AUTO_BATCH_CAP, fewer if the KV buffer would not fit the free memory) or an
    int, used exactly. mode: "auto" (graph on CUDA, slice elsewhere), "graph", "slice" or "masked".
    precision: "auto" (bf16 on CUDA, fp32 elsewhere), "fp32" or "bf16" (see the module docstring)."""
    # checked against the model before the buffer is sized: it holds exactly the positions this call needs
    prompts = check_request(prompts, max_new_tokens, model.config.n_positions)
    max_len = positions_needed(prompts.shape[1], max_new_tokens)
    device = model.transformer.wte.weight.device
    resolve_mode(mode, device)
    dtype = decode_dtype(precision, device)
    if device.type == "cuda":
        torch.cuda.empty_cache()  # hand cached blocks back before sizing and allocating the buffer
    batch = plan_batch_size(model, len(prompts), prompts.shape[1], max_len, batch_size, dtype, device)
    try:
        engine = StaticImageGPT(model, batch, max_len, dtype=dtype, mode=mode)
        return decode(engine, prompts, max_new_tokens, config, processors, progress)
    except torch.cuda.OutOfMemoryError:
        raise HyperfitError(f"out of GPU memory decoding {batch} sequences at once; pass a smaller batch size "
                            "(or leave it to auto)") from None


def fast_complete_images(model, tokens: torch.Tensor, prefix_rows: int, side: int,
                         decoding: DecodingConfig | None = None, processors=(), batch_size: int | None = None,
                         progress: bool = True, mode: str = "auto", precision: str = "auto") -> torch.Tensor:
    """Complete images from their top rows on the static-cache engine: (N, 1 + side*side) tokens with SOS in,
    (N, side*side) pixel tokens out, the first prefix_rows*side of them the prompt's. Greedy tokens equal HF
    generate's (tests/vision/test_fast_decode.py).
    batch_size, mode and precision: as in fast_generate_tokens (None/"auto" pick the fast path per device)."""
    if tokens.ndim != 2 or tokens.shape[1] != 1 + side * side:
        raise HyperfitError(f"expected (N, {1 + side * side}) tokens with SOS, got {tuple(tokens.shape)}")
    if not 1 <= prefix_rows < side:
        raise HyperfitError(f"the prefix must be between 1 and {side - 1} rows of a {side}-row image, "
                            f"got {prefix_rows}")
    prompt = tokens[:, :1 + prefix_rows * side]
    out = fast_generate_tokens(model, prompt, side * side - prefix_rows * side, decoding, processors=processors,
                               batch_size=batch_size, progress=progress, mode=mode, precision=precision)
    return out[:, 1:]
