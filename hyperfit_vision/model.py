"""Load, build and save ImageGPT (HF `ImageGPTForCausalImageModeling`) together with its colour palette."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, ImageGPTConfig, ImageGPTForCausalImageModeling, ImageGPTImageProcessor

from hyperfit_core.errors import HyperfitError
from hyperfit_vision.attention import use_fused_attention
from hyperfit_vision.palette import kmeans_palette, load_palette_file, palette_from_clusters, palette_to_clusters


@dataclass
class ImageModel:
    """A model with what is needed to turn images into its tokens and back."""

    model: ImageGPTForCausalImageModeling
    palette: torch.Tensor  # (vocab_size - 1, 3), pixel units
    side: int

    @property
    def sos(self) -> int:
        return self.model.config.vocab_size - 1

    @property
    def n_colors(self) -> int:
        return self.model.config.vocab_size - 1

    def processor(self) -> ImageGPTImageProcessor:
        return ImageGPTImageProcessor(clusters=palette_to_clusters(self.palette),
                                      size={"height": self.side, "width": self.side})

    def save(self, folder: str | Path) -> None:
        """save_pretrained for both weights and palette, so plain HF code can load the result."""
        self.model.save_pretrained(folder)
        self.processor().save_pretrained(folder)


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).exists() or name.count("/") > 1


def load_config(name_or_path: str) -> ImageGPTConfig:
    if _looks_like_path(name_or_path) and not Path(name_or_path).expanduser().exists():
        raise HyperfitError(f"model folder not found: {name_or_path}")
    try:
        config = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        raise HyperfitError(f"cannot load a model config from {name_or_path!r}: {str(exc).splitlines()[0]} "
                            "(offline? pass a local model folder, e.g. assets/fashion-base)") from None
    if config.model_type != "imagegpt":
        raise HyperfitError(f"{name_or_path} is a {config.model_type!r} model, not ImageGPT")
    return config


def _processor_palette(name_or_path: str, n_colors: int) -> tuple[torch.Tensor, int | None] | None:
    try:
        processor = ImageGPTImageProcessor.from_pretrained(name_or_path)
    except (OSError, ValueError):
        return None
    clusters = getattr(processor, "clusters", None)
    if clusters is None or len(clusters) != n_colors:
        return None
    size = getattr(processor, "size", None)
    side = getattr(size, "height", None) if size is not None and not isinstance(size, dict) else (size or {}).get("height")
    return palette_from_clusters(clusters), side


def resolve_palette(name_or_path: str, n_colors: int, palette_file: str | None = None,
                    fit_images: torch.Tensor | None = None, seed: int = 0) -> tuple[torch.Tensor, int | None, str]:
    """Palette from (1) an explicit file, (2) the model's image processor, (3) k-means on `fit_images`."""
    if palette_file:
        palette, side, origin = load_palette_file(palette_file), None, f"file {palette_file}"
    elif (found := _processor_palette(name_or_path, n_colors)) is not None:
        (palette, side), origin = found, "image processor"
    elif fit_images is not None:
        palette, side, origin = kmeans_palette(fit_images, n_colors, seed=seed), None, f"k-means (k={n_colors}, seed={seed})"
    else:
        raise HyperfitError(f"{name_or_path} has no image processor with a palette: pass --palette FILE "
                            "or training images to fit one")
    if len(palette) != n_colors:
        raise HyperfitError(f"the palette has {len(palette)} colours but the model predicts {n_colors}")
    return palette, side, origin


def load_imagegpt(name_or_path: str, palette_file: str | None = None, fit_images: torch.Tensor | None = None,
                  seed: int = 0, fused_attention: bool = True) -> tuple[ImageModel, str]:
    """Load an ImageGPT by hub id or local folder; returns the model and where its palette came from."""
    config = load_config(name_or_path)
    palette, side, origin = resolve_palette(name_or_path, config.vocab_size - 1, palette_file, fit_images, seed)
    side = side or math.isqrt(config.n_positions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # transformers 5 loads in the checkpoint's saved dtype by default ("auto"); a bf16 checkpoint
            # trained in bf16 would round an Adam step at lr 1e-6 away, so the weights are always fp32 here
            # (training and decoding cast to bf16 themselves on CUDA)
            model = ImageGPTForCausalImageModeling.from_pretrained(name_or_path, config=config,
                                                                   dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise HyperfitError(f"cannot load ImageGPT weights from {name_or_path!r}: {str(exc).splitlines()[0]}") from None
    ensure_fp32(model)
    if side * side > config.n_positions:
        raise HyperfitError(f"{side}x{side} images need {side * side} positions; the model has {config.n_positions}")
    if fused_attention:
        use_fused_attention(model)
    return ImageModel(model, palette, side), origin


def ensure_fp32(model) -> None:
    """Cast floating-point weights to fp32 in place if any came back in another dtype (a safety net under
    `dtype=torch.float32`, which some transformers load paths have ignored)."""
    if any(p.is_floating_point() and p.dtype != torch.float32 for p in model.parameters()):
        model.float()


def build_imagegpt(side: int, palette: torch.Tensor, n_layer: int = 2, n_embd: int = 64, n_head: int = 4,
                   seed: int = 0, fused_attention: bool = True) -> ImageModel:
    """A freshly initialised ImageGPT for side x side images over `palette` (tests, stand-ins, pretraining)."""
    config = ImageGPTConfig(vocab_size=len(palette) + 1, n_positions=side * side, n_embd=n_embd, n_layer=n_layer,
                            n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(seed)
    model = ImageGPTForCausalImageModeling(config)
    if fused_attention:
        use_fused_attention(model)
    return ImageModel(model, palette.float(), side)
