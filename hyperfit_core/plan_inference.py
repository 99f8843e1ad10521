"""Memory per GPU of evaluating a model (generate, evaluate, analyze), beside plan.py's training rows: weights plus
the KV cache of one decode batch, for one device, data parallel (a replica per GPU, the items split) and a device
map (the layers split over the GPUs).

Per GPU: weights = bytes per parameter x P. fp32: hyperfit's text commands load fp32 weights and decode under bf16
autocast (the same arithmetic as training), and autocast keeps the bf16 copy of each weight it casts for as long as
a batch decodes (its cast cache), so 4 + 2 = 6 bytes per parameter; bf16: a checkpoint served as stored (vLLM/TGI);
KV cache = 2 (keys, values) x layers x kv_dim x 2 bytes (bf16 under autocast) x batch x (prompt + new tokens);
prefill logits = batch x prompt x vocab x 2 bytes (the prompt's forward computes every position's logits). A device
map splits weights and cache evenly over the GPUs (accelerate balances whole layers, so a GPU may hold one layer
more) and keeps the logits on the last GPU. GB = 10^9 bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GB = 1e9
LAYOUTS = {
    "one_device": "one GPU holds the model and the whole decode batch",
    "data_parallel": "torchrun --nproc_per_node N: a replica per GPU, the batch split",
    "device_map": "--device-map auto: the layers split over the N GPUs, one process",
}
WEIGHT_BYTES = {"fp32": 6, "bf16": 2}  # fp32: the fp32 weights + autocast's cached bf16 copy


@dataclass
class InferenceRow:
    layout: str
    weights: str  # "fp32" (hyperfit's commands: fp32 + autocast's bf16 copy) or "bf16" (as stored, a server)
    gpus: int  # GPUs this layout uses
    batch_per_gpu: int
    weights_gb: float
    kv_cache_gb: float
    logits_gb: float
    total_gb: float  # per GPU
    fits: str  # "yes" / "no": under headroom x GPU memory


def kv_bytes_per_token(shape: dict, bytes_per_value: int = 2) -> int:
    """Keys and values of every layer for one token."""
    return 2 * shape["layers"] * shape["kv"] * bytes_per_value


def inference_rows(shape: dict, params: int, gpus: int, gpu_mem_gb: float, batch: int, prompt: int, new: int,
                   headroom: float = 0.9) -> list[InferenceRow]:
    """Rows for each layout x weight dtype; `shape` is plan._shape(config) (layers, kv, vocab)."""
    tokens = prompt + new
    rows = []
    for layout in LAYOUTS:
        used = 1 if layout == "one_device" else gpus
        per_gpu_batch = math.ceil(batch / used) if layout == "data_parallel" else batch
        split = used if layout == "device_map" else 1
        for dtype, size in WEIGHT_BYTES.items():
            weights = size * params / split
            cache = kv_bytes_per_token(shape) * per_gpu_batch * tokens / split
            logits = 2 * per_gpu_batch * prompt * shape["vocab"]
            total = weights + cache + logits
            rows.append(InferenceRow(layout, dtype, used, per_gpu_batch, weights / GB, cache / GB, logits / GB,
                                     total / GB, "yes" if total <= headroom * gpu_mem_gb * GB else "no"))
    return rows


def format_inference(rows: list[InferenceRow], batch: int, prompt: int, new: int) -> str:
    head = (f"Evaluating (generate / evaluate / analyze): decode batch {batch} x ({prompt} prompt + {new} new) "
            "tokens, bf16 KV cache; GB per GPU")
    columns = ["layout", "weights", "GPUs", "batch/GPU", "weights GB", "KV cache", "logits", "total", "fits"]
    table = [[r.layout, r.weights, str(r.gpus), str(r.batch_per_gpu), f"{r.weights_gb:.1f}", f"{r.kv_cache_gb:.1f}",
              f"{r.logits_gb:.1f}", f"{r.total_gb:.1f}", r.fits] for r in rows]
    widths = [max(len(x) for x in column) for column in zip(columns, *table)]
    line = lambda cells: "  ".join(c.rjust(w) if i > 1 else c.ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    legend = "Layouts: " + "; ".join(f"{k} = {v}" for k, v in LAYOUTS.items()) + "."
    return "\n".join([head, "", line(columns), *(line(r) for r in table), "", legend])
