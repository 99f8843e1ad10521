"""Vision adapter: hyperfitting ImageGPT and completing images from a prefix."""

from hyperfit_core.model_types import register_model_type


def _imagegpt_on_meta(config):
    from transformers import ImageGPTForCausalImageModeling

    return ImageGPTForCausalImageModeling(config)


# ImageGPT is not in AutoModelForCausalLM's mapping, and its MLP is GPT-2's plain one (c_fc, c_proj): the memory
# planner and the engine's auto activation checkpointing learn both here, whenever this package is imported
register_model_type("imagegpt", build=_imagegpt_on_meta, gated_mlp=False)
