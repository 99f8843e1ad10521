"""Cheaper hyperfitting: train only the last K transformer blocks (`last:K`), LoRA adapters (peft), or LoRA
adapters on the last K blocks only (`--lora R --train-layers last:K`).

The follow-up study (arXiv 2605.22579) locates the hyperfitting effect in the final transformer block, so
`last:K` freezes everything but the last K blocks, the final norm and the LM head. With tied input/output
embeddings (GPT-2, ImageGPT) the head *is* the embedding matrix, so it trains too.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import torch

from hyperfit_core.errors import HyperfitError

# where common architectures keep their block list and final norm (checked in order; a generic search follows)
_BLOCK_PATHS = ("transformer.h", "model.layers", "model.model.layers", "gpt_neox.layers", "model.decoder.layers",
                "transformer.blocks", "transformer.layers", "layers", "h", "blocks")
_NORM_PATHS = ("transformer.ln_f", "model.norm", "model.model.norm", "gpt_neox.final_layer_norm",
               "model.decoder.final_layer_norm", "transformer.norm_f", "norm", "ln_f")
_TRAIN_LAYERS = re.compile(r"^last:([1-9][0-9]*)$")


def parse_train_layers(spec: str) -> int:
    """"last:K" -> K (>= 1), or one clear error."""
    match = _TRAIN_LAYERS.match(str(spec).strip())
    if match is None:
        raise HyperfitError(f"--train-layers must look like last:K with K >= 1 (e.g. last:1), got {spec!r}")
    return int(match.group(1))


@dataclass
class AsItCame:
    """A model's training-only settings before `hyperfit` changed them, so `hand_back` can restore them."""

    requires_grad: dict[str, bool]
    checkpointing: bool
    input_grads: bool = False  # switched on for training (frozen embeddings under activation checkpointing)
    lora_merge: tuple | None = None  # (scaling, transposed modules) that fold the LoRA adapters back in


def as_it_came(model: torch.nn.Module) -> AsItCame:
    return AsItCame({name: p.requires_grad for name, p in model.named_parameters()}, is_checkpointing(model))


def disable_dropout(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def select_trained(model: torch.nn.Module, train_layers: str | None, lora_rank: int | None):
    """What trains: (the module whose parameters the optimizer gets, how to merge LoRA back or None). The whole
    model; its last K blocks with the final norm and head (the rest frozen); LoRA adapters (a PeftModel); or
    both given: LoRA adapters on the last K blocks' linears only (the follow-up's late-stage training)."""
    if train_layers and lora_rank:
        targets = last_block_linears(model, parse_train_layers(train_layers))
        peft_model = apply_lora(model, lora_rank, target_modules=targets)
        return peft_model, (lora_scaling(peft_model), lora_transposed(peft_model))
    if train_layers:
        apply_train_layers(model, train_layers)
    elif lora_rank:
        peft_model = apply_lora(model, lora_rank)
        return peft_model, (lora_scaling(peft_model), lora_transposed(peft_model))
    return model, None


def hand_back(model: torch.nn.Module, came: AsItCame) -> None:
    """Undo the training-only settings: which parameters require grad, input grads, activation checkpointing."""
    for name, param in model.named_parameters():
        param.requires_grad_(came.requires_grad.get(name, True))
    if came.input_grads:
        model.disable_input_require_grads()
    if is_checkpointing(model) != came.checkpointing:
        set_checkpointing(model, came.checkpointing)


def _get(module: torch.nn.Module, path: str):
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def find_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The model's list of transformer blocks: a known attribute path, else the longest ModuleList of one type."""
    for path in _BLOCK_PATHS:
        blocks = _get(model, path)
        if isinstance(blocks, torch.nn.ModuleList) and len(blocks) > 0:
            return blocks
    best = None
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 0 \
                and len({type(m) for m in module}) == 1 and (best is None or len(module) > len(best)):
            best = module
    if best is None:
        raise HyperfitError(f"cannot find the transformer blocks of {type(model).__name__} for --train-layers")
    return best


def check_train_layers(model: torch.nn.Module, spec: str) -> int:
    """K of "last:K" when the model has K blocks, else one clear error; changes nothing (the recipe calls it
    before a run dir exists)."""
    k = parse_train_layers(spec)
    blocks = find_blocks(model)
    if k > len(blocks):
        raise HyperfitError(f"--train-layers last:{k} but the model has only {len(blocks)} blocks")
    return k


def apply_train_layers(model: torch.nn.Module, spec: str) -> dict[str, int]:
    """Freeze all parameters except the last K blocks, the final norm and the LM head; returns counts."""
    k = check_train_layers(model, spec)
    blocks = find_blocks(model)
    for param in model.parameters():
        param.requires_grad_(False)
    keep = list(blocks[len(blocks) - k:])
    norm = next((m for m in (_get(model, p) for p in _NORM_PATHS) if isinstance(m, torch.nn.Module)), None)
    if norm is not None:
        keep.append(norm)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        raise HyperfitError(f"{type(model).__name__} has no output embeddings (LM head) to train")
    keep.append(head)
    for module in keep:
        for param in module.parameters():
            param.requires_grad_(True)
    return count_parameters(model)


def last_block_linears(model: torch.nn.Module, k: int) -> list[str]:
    """Full module names of every linear (nn.Linear, GPT-2-style Conv1D) inside the last `k` blocks."""
    from transformers.pytorch_utils import Conv1D

    blocks = find_blocks(model)
    if k > len(blocks):
        raise HyperfitError(f"--train-layers last:{k} but the model has only {len(blocks)} blocks")
    names = {id(module): name for name, module in model.named_modules()}
    return [names[id(module)] for block in blocks[len(blocks) - k:] for module in block.modules()
            if isinstance(module, (torch.nn.Linear, Conv1D))]


def apply_lora(model: torch.nn.Module, rank: int, alpha: float | None = None, target_modules="all-linear"):
    """Wrap `model` with peft LoRA adapters of rank `rank` on every attention/MLP linear (not the LM head), or on
    the modules named in `target_modules` (full names: peft matches a name or a dotted suffix of one).

    peft injects the adapters into the model's own modules, so `model` itself changes; the returned PeftModel
    is what trains. `merged_state_dict` folds the adapters back into plain weights.
    """
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise HyperfitError("--lora needs peft: pip install 'hyperfit[lora]'") from None
    if rank < 1:
        raise HyperfitError(f"LoRA rank must be at least 1, got {rank}")
    config = LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else rank, lora_dropout=0.0,
                        target_modules=target_modules, bias="none")
    with warnings.catch_warnings():  # GPT-2-style Conv1D: peft switches fan_in_fan_out on itself, and says so
        warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # peft reads the old name
        return get_peft_model(model, config)


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    params = {id(p): p for p in model.parameters()}.values()
    return {"total": sum(p.numel() for p in params), "trainable": sum(p.numel() for p in params if p.requires_grad)}


def merged_state_dict(state_dict: dict, scaling: float, transposed: set[str] = frozenset(),
                      adapter: str = "default") -> dict:
    """A peft LoRA model's full state dict -> the plain model's, with W + scaling * B @ A folded in.

    Works on a gathered (full) state dict, so it serves sharded runs (FSDP2 / ZeRO-3) as well as one process.
    `transposed` names the LoRA modules whose base weight is stored (in, out) (GPT-2-style Conv1D, from
    `lora_transposed(peft_model)`); their update is transposed to match.
    """
    out = {}
    suffix_a, suffix_b = f".lora_A.{adapter}.weight", f".lora_B.{adapter}.weight"
    for key, value in state_dict.items():
        if ".lora_A." in key or ".lora_B." in key or ".lora_embedding_" in key or ".lora_magnitude" in key:
            continue
        if ".base_layer." in key:
            prefix, name = key.split(".base_layer.")
            if name == "weight" and prefix + suffix_a in state_dict:
                a, b = state_dict[prefix + suffix_a].float(), state_dict[prefix + suffix_b].float()
                delta = (b @ a) * scaling
                if prefix in transposed:
                    delta = delta.T
                value = (value.float() + delta).to(value.dtype)
            key = f"{prefix}.{name}"
        out[key] = value
    prefix = "base_model.model."
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in out.items()}


def lora_transposed(peft_model) -> set[str]:
    """State-dict prefixes of the LoRA layers that wrap a transposed (fan_in_fan_out) weight."""
    return {name for name, module in peft_model.named_modules() if getattr(module, "fan_in_fan_out", False)}


def lora_scaling(peft_model, adapter: str = "default") -> float:
    config = peft_model.peft_config[adapter]
    return config.lora_alpha / config.r


def is_checkpointing(model) -> bool:
    # transformers 5 deprecates is_gradient_checkpointing (a FutureWarning on every read)
    name = "is_activation_checkpointing" if hasattr(model, "is_activation_checkpointing") \
        else "is_gradient_checkpointing"
    return bool(getattr(model, name, False))


def set_checkpointing(model, enable: bool) -> None:
    """transformers 5 renamed gradient_checkpointing_* to activation_checkpointing_*; use whichever exists."""
    if enable:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise HyperfitError(f"{type(model).__name__} does not support gradient checkpointing")
        name = "activation_checkpointing_enable" if hasattr(model, "activation_checkpointing_enable") \
            else "gradient_checkpointing_enable"
    else:
        name = "activation_checkpointing_disable" if hasattr(model, "activation_checkpointing_disable") \
            else "gradient_checkpointing_disable"
    getattr(model, name)()
