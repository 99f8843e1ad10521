"""How much memory per GPU hyperfitting a model takes, per strategy, from its config alone (no weights).

The model is built on the meta device (accelerate's `init_empty_weights`), so an 8B or 70B config costs no memory;
accelerate's own helpers give the parameter bytes, the largest layer and the mixed-precision training footprint
(`estimate_training_usage`: fp32 weights, fp32 + bf16 gradients, two fp32 Adam moments). On top of those this
module adds what they don't cover: sharding (FSDP2, ZeRO-3), offload to CPU, training only part of the model
(last-K blocks, LoRA) and the activations of one micro batch. The figures are those of the training hyperfit runs:
fp32 master weights whatever `dtype` the config was saved with, a tied head counted once, and CPU memory for
offloaded state with DeepSpeed's estimators' 1.5x buffer (tests/core/test_train_plan.py holds them against those).

Activations are an estimate for bf16 autocast with SDPA/flash attention (no seq^2 term), dropout off:
per block and token ~ 8h bytes of fp32 norm inputs + 2 bytes x (3h + 2 h_kv) for attention + 2 bytes x (h + 4i)
for a gated MLP (h + 2i for a plain one), plus the logits (bf16, their fp32 copy and its gradient: 10 bytes x vocab
per token). With activation checkpointing each block keeps only its fp32 input, and one block is recomputed at a
time. GB here are 10^9 bytes.
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import MODEL_CONFIG
from hyperfit_core.model_types import builder, gated_mlp
from hyperfit_core.plan_inference import InferenceRow, format_inference, inference_rows

GB = 1e9
STRATEGIES = {
    "ddp": "DDP (full replica per GPU)",
    "fsdp2": "FSDP2 full shard",
    "fsdp2_offload": "FSDP2 + CPU offload",
    "zero3_offload": "ZeRO-3 + optimizer offload",
}
# CPU memory of offloaded state x this: the additional_buffer_factor of DeepSpeed's own memory estimators
# (pinned staging buffers, allocator overhead); without it a node sized to the bare state runs out
OFFLOAD_BUFFER = 1.5


@dataclass
class PlanRow:
    strategy: str
    train: str  # "full", "last:K", "lora:R"
    trainable: int
    weights_gb: float
    grads_gb: float
    optimizer_gb: float
    activations_gb: float
    activations_ckpt_gb: float  # with activation checkpointing
    total_gb: float  # without checkpointing
    total_ckpt_gb: float
    cpu_per_node_gb: float
    fits: str  # "yes", "with checkpointing", "no"


@dataclass
class MemoryPlan:
    model: str
    params: int
    blocks: int
    gpus: int
    nodes: int
    gpu_mem_gb: float
    batch: int
    seq: int
    per_gpu_batch: int
    rows: list[PlanRow] = field(default_factory=list)
    # evaluating it: decode batch x (prompt + new) tokens per layout (hyperfit_core.plan_inference)
    inference: dict = field(default_factory=dict)

    def row(self, strategy: str, train: str = "full") -> PlanRow:
        return next(r for r in self.rows if r.strategy == strategy and r.train == train)

    def to_dict(self) -> dict:
        return asdict(self)


def _text_config(config):
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def _shape(config) -> dict:
    c = _text_config(config)
    hidden = c.hidden_size
    heads = c.num_attention_heads
    kv_heads = getattr(c, "num_key_value_heads", None) or heads
    inner = getattr(c, "intermediate_size", None) or getattr(c, "n_inner", None) or 4 * hidden
    return {"hidden": hidden, "kv": hidden * kv_heads // heads, "inner": inner, "layers": c.num_hidden_layers,
            "vocab": c.vocab_size, "gated": gated_mlp(c.model_type),
            "tied": bool(getattr(c, "tie_word_embeddings", False))}


def activation_bytes(config, batch: int, seq: int, *, bf16: bool = True, checkpointing: bool = False,
                     blocks_with_grad: int | None = None) -> float:
    """Activation memory of one forward+backward of `batch` x `seq` tokens (module docstring has the formula).

    `blocks_with_grad`: only the last K blocks keep activations for backward (last-K training, untied head)."""
    s = _shape(config)
    tokens = batch * seq
    e = 2 if bf16 else 4
    mlp = s["hidden"] + (4 if s["gated"] else 2) * s["inner"]
    per_block = tokens * (8 * s["hidden"] + e * (3 * s["hidden"] + 2 * s["kv"]) + e * mlp)
    logits = tokens * s["vocab"] * (e + 4 + 4)
    blocks = s["layers"] if blocks_with_grad is None else min(blocks_with_grad, s["layers"])
    plain = blocks * per_block + logits
    if checkpointing:  # never more than without: with one block, recomputing it saves nothing
        return min(plain, blocks * tokens * 4 * s["hidden"] + per_block + logits)
    return plain


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_WHAT_TO_PASS = (f"pass a model folder, its {MODEL_CONFIG}, a .gguf file or a hub id (namespace/name); the shapes "
                 "docs/scale.md plans are in configs/models/")


def _read_config(read: Callable, source: str):
    try:
        return read()
    except (OSError, ValueError) as exc:
        raise HyperfitError(f"cannot read a model config from {source}: {exc}".splitlines()[0]) from None


def _hub_config(repo_id: str):
    """A hub id's config: from the local cache, else with one request (huggingface_hub retries a failed
    connection for ~25 s before giving up; offline, the answer is known at once)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url, is_offline_mode
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(repo_id, local_files_only=True)
    except (OSError, ValueError):
        pass  # not cached
    if is_offline_mode():
        raise HyperfitError(f"{repo_id} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: "
                            + _WHAT_TO_PASS)
    try:
        get_hf_file_metadata(hf_hub_url(repo_id, MODEL_CONFIG), timeout=10)  # one try, no retries
    except Exception as exc:  # noqa: BLE001 - refused, not found or unreachable (the HTTP library's own errors)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HyperfitError(f"cannot fetch {repo_id}'s config from the Hugging Face Hub ({reason}): "
                            + _WHAT_TO_PASS) from None
    return _read_config(lambda: AutoConfig.from_pretrained(repo_id), repo_id)


def load_config(config_or_path):
    """A transformers config, a folder / config.json holding one, a GGUF file (needs the gguf package), or a hub id
    (from the cache, else fetched). Whatever fails is one line saying what to pass."""
    from transformers import AutoConfig, PretrainedConfig

    if isinstance(config_or_path, PretrainedConfig):
        return config_or_path
    source = str(config_or_path)
    path = Path(source).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        if importlib.util.find_spec("gguf") is None:
            raise HyperfitError(f"reading {source} needs the gguf package: pip install 'hyperfit[gguf]'")
        return _read_config(lambda: AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name), source)
    if path.is_file():
        path = path.parent
    if path.is_dir():
        if not (path / MODEL_CONFIG).is_file():
            raise HyperfitError(f"{source} holds no {MODEL_CONFIG}: " + _WHAT_TO_PASS)
        return _read_config(lambda: AutoConfig.from_pretrained(str(path)), source)
    if not _HUB_ID.match(source) or ".." in source:
        raise HyperfitError(f"no model folder or file at {source}: " + _WHAT_TO_PASS)
    return _hub_config(source)


def empty_model(config) -> torch.nn.Module:
    """The model with every weight on the meta device: shapes, no memory. AutoModelForCausalLM builds it, or
    what the adapter registered for its type (hyperfit_core.model_types)."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    build = builder(config.model_type)
    with init_empty_weights():
        if build is not None:
            return build(config)
        try:
            return AutoModelForCausalLM.from_config(config)
        except ValueError as exc:  # "Unrecognized configuration class ... for this kind of AutoModel"
            raise HyperfitError(f"cannot build a model of type {config.model_type!r} from its config: "
                                "AutoModelForCausalLM does not know it and no adapter registered it "
                                "(hyperfit_core.model_types.register_model_type)") from None


def _lora_params(model: torch.nn.Module, rank: int, last: int | None = None) -> int:
    """Adapter parameters of LoRA rank `rank` on every linear of the blocks (what peft's all-linear targets), or
    of the last `last` blocks only (--lora R --train-layers last:K)."""
    from transformers.pytorch_utils import Conv1D

    from hyperfit_core.trainable import find_blocks

    blocks = find_blocks(model)
    if last is not None and last > len(blocks):
        raise HyperfitError(f"--lora-layers last:{last} but the model has only {len(blocks)} blocks")
    total = 0
    for module in (blocks if last is None else blocks[len(blocks) - last:]).modules():
        if isinstance(module, torch.nn.Linear):
            total += rank * (module.in_features + module.out_features)
        elif isinstance(module, Conv1D):
            total += rank * sum(module.weight.shape)
    return total


def plan_memory(config_or_path, gpus: int, gpu_mem_gb: float, batch: int = 8, seq: int = 256, *, nodes: int = 1,
                train_layers: tuple[str, ...] = ("last:1",), lora_ranks: tuple[int, ...] = (16,),
                lora_layers: tuple[str, ...] = (), headroom: float = 0.9, name: str | None = None,
                infer_batch: int = 32, infer_prompt: int = 32, infer_new: int = 256) -> MemoryPlan:
    """Per-GPU memory of hyperfitting at global batch `batch` x `seq` tokens on `gpus` GPUs (over `nodes` nodes),
    for each strategy and for full / last-K / LoRA training. A row fits when its total stays under `headroom`
    x `gpu_mem_gb` (the rest: CUDA context, allocator fragmentation, communication buffers)."""
    from accelerate.commands.estimate import estimate_training_usage
    from accelerate.utils import calculate_maximum_sizes

    from hyperfit_core.trainable import apply_train_layers, count_parameters, parse_train_layers

    if gpus < 1 or nodes < 1 or gpus % nodes:
        raise HyperfitError(f"--gpus must be a positive multiple of --nodes, got {gpus} GPUs on {nodes} nodes")
    if batch < 1 or seq < 1 or gpu_mem_gb <= 0:
        raise HyperfitError("batch, sequence length and GPU memory must be positive")
    config = load_config(config_or_path)
    # training loads fp32 master weights whatever dtype the config was saved in (a bf16 `dtype` would halve every
    # figure), and ties the head to the embeddings when the config says so (meta init leaves them apart)
    model = empty_model(config).to(torch.float32)
    model.tie_weights()
    total_bytes, largest = calculate_maximum_sizes(model)  # fp32 bytes of all weights, of the largest layer
    largest_bytes = largest[0] if isinstance(largest, (tuple, list)) else largest
    params = count_parameters(model)["total"]
    usage = estimate_training_usage(total_bytes, "bfloat16")  # model 4P, gradients 4P + 2P, optimizer 8P
    per_gpu = math.ceil(batch / gpus)
    plan = MemoryPlan(model=name or str(getattr(config, "_name_or_path", "") or config_or_path), params=params,
                      blocks=_shape(config)["layers"], gpus=gpus, nodes=nodes, gpu_mem_gb=gpu_mem_gb, batch=batch,
                      seq=seq, per_gpu_batch=per_gpu)

    variants = [("full", params, None)]
    for spec in train_layers:
        for p in model.parameters():
            p.requires_grad_(True)
        k_trainable = apply_train_layers(model, spec)["trainable"]
        k = int(spec.split(":")[1])
        # a head tied to the input embeddings trains the embeddings too: every block then keeps activations
        variants.append((spec, k_trainable, None if _shape(config)["tied"] else k))
    lora = [(f"lora:{r}", _lora_params(model, r), None) for r in lora_ranks]

    layer16, layer32 = largest_bytes / 2, largest_bytes  # one gathered layer in bf16 / fp32
    for spec in lora_layers:  # LoRA on the last K blocks only: nothing before them needs a gradient
        k = parse_train_layers(spec)
        lora += [(f"lora:{r}+last:{k}", _lora_params(model, r, last=k), k) for r in lora_ranks]
    for strategy in STRATEGIES:
        for train, trainable, blocks_with_grad in variants + lora:
            extra = trainable if train.startswith("lora") else 0  # adapters add weights; the base stays as is
            frac = trainable / params
            weights4 = usage["model"] + 4 * extra
            grads = usage["gradients"] * frac
            optim = usage["optimizer"] * frac
            cpu = 0.0
            if strategy == "ddp":
                w, g, o = weights4, grads, optim
            elif strategy == "fsdp2":  # fp32 shards + two gathered bf16 layers (current + prefetch)
                w, g, o = weights4 / gpus + 2 * layer16, 4 * trainable / gpus + layer16, optim / gpus
            elif strategy == "fsdp2_offload":  # shards, gradients and Adam live in CPU memory
                w, g, o = 2 * layer16, layer16, 0.0
                cpu = OFFLOAD_BUFFER * (weights4 + 4 * trainable + optim) / nodes
            else:  # ZeRO-3 with torch_autocast (hyperfit_core/launch.py): fp32 parameter partitions on GPU, layers
                # gathered in fp32, one layer's fp32 gradients in flight; master copy, gradients and Adam on CPU
                w, g, o = 4 * (params + extra) / gpus + 2 * layer32, layer32, 0.0
                cpu = OFFLOAD_BUFFER * (4 * trainable + 4 * trainable + optim) / nodes
            act = activation_bytes(config, per_gpu, seq, blocks_with_grad=blocks_with_grad)
            act_ckpt = activation_bytes(config, per_gpu, seq, checkpointing=True, blocks_with_grad=blocks_with_grad)
            total, total_ckpt = w + g + o + act, w + g + o + act_ckpt
            limit = headroom * gpu_mem_gb * GB
            fits = "yes" if total <= limit else "with checkpointing" if total_ckpt <= limit else "no"
            plan.rows.append(PlanRow(strategy, train, trainable, w / GB, g / GB, o / GB, act / GB, act_ckpt / GB,
                                     total / GB, total_ckpt / GB, cpu / GB, fits))
    if min(infer_batch, infer_prompt, infer_new) < 1:
        raise HyperfitError("the inference batch, prompt and new tokens must be positive")
    rows = inference_rows(_shape(config), params, gpus, gpu_mem_gb, infer_batch, infer_prompt, infer_new, headroom)
    plan.inference = {"batch": infer_batch, "prompt": infer_prompt, "new": infer_new,
                      "rows": [asdict(r) for r in rows]}
    return plan


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def format_plan(plan: MemoryPlan) -> str:
    """The plan as a text table (GB = 10^9 bytes per GPU; CPU per node where something is offloaded)."""
    head = (f"{plan.model}: {_count(plan.params)} parameters, {plan.blocks} blocks; {plan.gpus} GPU(s) x "
            f"{plan.gpu_mem_gb:g} GB on {plan.nodes} node(s); global batch {plan.batch} x {plan.seq} tokens "
            f"({plan.per_gpu_batch} per GPU); bf16 autocast, fp32 master weights, Adam")
    columns = ["strategy", "train", "trainable", "weights", "grads", "optim", "activ", "activ(ckpt)", "total",
               "total(ckpt)", "CPU/node", "fits"]
    rows = [[r.strategy, r.train, _count(r.trainable), f"{r.weights_gb:.1f}", f"{r.grads_gb:.1f}",
             f"{r.optimizer_gb:.1f}", f"{r.activations_gb:.1f}", f"{r.activations_ckpt_gb:.1f}", f"{r.total_gb:.1f}",
             f"{r.total_ckpt_gb:.1f}", f"{r.cpu_per_node_gb:.0f}" if r.cpu_per_node_gb else "-", r.fits]
            for r in plan.rows]
    widths = [max(len(str(x)) for x in column) for column in zip(columns, *rows)]
    line = lambda cells: "  ".join(str(c).rjust(w) if i > 1 else str(c).ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    legend = ("GB per GPU (10^9 bytes). fits: under 90% of GPU memory without / with activation checkpointing. "
              "Strategies: " + "; ".join(f"{k} = {v}" for k, v in STRATEGIES.items()) + ".")
    text = "\n".join([head, "", line(columns), *(line(r) for r in rows), "", legend])
    if plan.inference:
        rows = [InferenceRow(**r) for r in plan.inference["rows"]]
        text += "\n\n" + format_inference(rows, plan.inference["batch"], plan.inference["prompt"],
                                          plan.inference["new"])
    return text


def plan_command(load_model_config: Callable[[str], object], *, name: str = "plan", default_seq: int | None = 256):
    """A click command `plan --model ID_OR_DIR --gpus N --gpu-mem GB ...` for a modality's group.

    `load_model_config(model)` returns the transformers config (e.g. the adapter's own loader, with its checks;
    a model type AutoModelForCausalLM can't build is registered by its adapter: hyperfit_core.model_types);
    `default_seq=None` makes --seq default to the model's own positions (an image model's sequence is its whole
    image)."""
    import json

    import click

    seq_help = "Tokens per sequence" + ("." if default_seq else " (default: the model's positions, n_positions).")

    @click.command(name=name, help="Memory per GPU of hyperfitting a model with each strategy, and of evaluating "
                                   "it (reads only its config: no weights are loaded).")
    @click.option("--model", required=True, help=f"Hub id, model folder or {MODEL_CONFIG}.")
    @click.option("--gpus", type=int, default=8, show_default=True, help="GPUs in total.")
    @click.option("--gpu-mem", type=float, default=80.0, show_default=True, help="Memory of one GPU, GB.")
    @click.option("--nodes", type=int, default=1, show_default=True, help="Nodes the GPUs are spread over.")
    @click.option("--batch", type=int, default=8, show_default=True, help="Global batch (sequences).")
    @click.option("--seq", type=int, default=default_seq, show_default=default_seq is not None, help=seq_help)
    @click.option("--train-layers", "train_layers", multiple=True, default=("last:1",), show_default=True,
                  help="last:K variants to include (repeatable).")
    @click.option("--lora", "lora_ranks", type=int, multiple=True, default=(16,), show_default=True,
                  help="LoRA ranks to include (repeatable).")
    @click.option("--lora-layers", "lora_layers", multiple=True, default=(), show_default=True,
                  help="Also each LoRA rank on the last K blocks only (last:K, repeatable; train with --lora R "
                       "--train-layers last:K).")
    @click.option("--infer-batch", type=int, default=32, show_default=True,
                  help="Evaluation rows: sequences decoded at once (generate's --batch-size).")
    @click.option("--infer-prompt", type=int, default=32, show_default=True, help="Evaluation rows: prompt tokens.")
    @click.option("--infer-new", type=int, default=256, show_default=True, help="Evaluation rows: new tokens.")
    @click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
    def command(model, gpus, gpu_mem, nodes, batch, seq, train_layers, lora_ranks, lora_layers, infer_batch,
                infer_prompt, infer_new, as_json):
        config = load_model_config(model)
        if seq is None:
            seq = config.n_positions
        plan = plan_memory(config, gpus, gpu_mem, batch, seq, nodes=nodes,
                           train_layers=tuple(train_layers), lora_ranks=tuple(lora_ranks),
                           lora_layers=tuple(lora_layers), name=model, infer_batch=infer_batch,
                           infer_prompt=infer_prompt, infer_new=infer_new)
        click.echo(json.dumps(plan.to_dict(), indent=2) if as_json else format_plan(plan))

    return command
