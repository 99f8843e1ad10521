"""What the core needs to know about a model type beyond its transformers config: how to build it from the config
and whether its MLP is gated (the memory planner's activation estimate, which the engine's auto activation
checkpointing also uses). transformers' causal LMs need no entry; an adapter registers the model types it brings
(hyperfit_vision registers ImageGPT when it is imported), so hyperfit_core names no adapter's model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# transformers' causal LMs whose MLP is plain (up, activation, down) rather than gated (gate * up, down)
_PLAIN_MLP = {"gpt2", "gpt_neox", "gptj", "opt", "bloom", "falcon", "gpt_bigcode", "phi"}


@dataclass(frozen=True)
class ModelType:
    build: Callable | None = None  # config -> model, for a type AutoModelForCausalLM.from_config does not build
    gated_mlp: bool = True


_REGISTERED: dict[str, ModelType] = {}


def register_model_type(model_type: str, *, build: Callable | None = None, gated_mlp: bool = True) -> None:
    """An adapter's model type (transformers' `config.model_type`): its builder and whether its MLP is gated."""
    _REGISTERED[model_type] = ModelType(build=build, gated_mlp=gated_mlp)


def builder(model_type: str) -> Callable | None:
    """The registered config -> model builder, or None (AutoModelForCausalLM builds it)."""
    registered = _REGISTERED.get(model_type)
    return registered.build if registered is not None else None


def gated_mlp(model_type: str) -> bool:
    registered = _REGISTERED.get(model_type)
    return registered.gated_mlp if registered is not None else model_type not in _PLAIN_MLP
