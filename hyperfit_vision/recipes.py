"""Vision recipes: hyperfit ImageGPT on images, complete held-out images from a prefix, draw grids.

The CLI and scripts call these; each writes a run dir (config, versions, metrics.jsonl, tensors, PNGs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import click
import torch
from safetensors.torch import load_file, save_file

from hyperfit_core.atomic import atomic_path, ensure_writable_dir
from hyperfit_core.decoding import DecodingConfig
from hyperfit_core.errors import HyperfitError
from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences
from hyperfit_core.train import TrainConfig, hyperfit
from hyperfit_vision.complete import prefix_rows_for
from hyperfit_vision.fast_decode import fast_complete_images
from hyperfit_vision.data import LabelledImages, load_images
from hyperfit_vision.grid import completion_grid, masked_prefix
from hyperfit_vision.model import ImageModel, load_imagegpt
from hyperfit_vision.tokens import images_to_tokens, tokens_to_images

TRAIN_TOKENS = "train_tokens.safetensors"
COMPLETIONS = "completions.safetensors"


@dataclass
class DataSpec:
    source: str  # cifar10, fashion-mnist or a folder
    root: str = "data"
    split: str = "train"
    download: bool = False

    def load(self) -> LabelledImages:
        return load_images(self.source, self.root, self.split, self.download)


@dataclass
class TrainSpec:
    model: str
    data: DataSpec
    train: TrainConfig
    num_train: int = 2000
    palette: str | None = None
    extra: dict = field(default_factory=dict)


def _spec_to_dict(spec: TrainSpec) -> dict:
    return {"model": spec.model, "data": vars(spec.data), "train": vars(spec.train), "num_train": spec.num_train,
            "palette": spec.palette}


def train_run(spec: TrainSpec, out: str | Path = "runs", resume: str | Path | None = None) -> RunDir:
    """Hyperfit `spec.model` on `spec.num_train` random images of `spec.data`; returns the run dir.

    With `resume`, the run's own config.json is used, so the continued run is the same run.
    """
    if resume is not None:
        run = RunDir(resume)
        if not (run / "config.json").is_file():
            raise HyperfitError(f"{resume} is not a run dir (no config.json)")
        spec = spec_from_dict(json.loads((run / "config.json").read_text())["config"])
    else:
        ensure_writable_dir(out)  # fail before any work; the run dir itself is made once the inputs check out
    images = spec.data.load()
    selected = images.subset(torch.randperm(len(images), generator=torch.Generator().manual_seed(spec.train.seed))
                             [:spec.num_train]) if spec.num_train <= len(images) else None
    if selected is None:
        raise HyperfitError(f"asked for {spec.num_train} training images but {spec.data.source} holds {len(images)}")
    image_model, palette_origin = load_imagegpt(spec.model, spec.palette, fit_images=selected.images, seed=spec.train.seed)
    selected = selected.resized(image_model.side)
    ids = images_to_tokens(selected.images, image_model.palette, sos=image_model.sos)
    data = TokenSequences(ids, selected.source_index)
    data.check_fits(image_model.model.config.n_positions)
    if resume is None:
        run = RunDir.create(out, "vision-train")
        run.write_config(_spec_to_dict(spec), seed=spec.train.seed, command="vision train")
        data.save(run / TRAIN_TOKENS)
        run.log({"event": "data", "images": len(data), "side": image_model.side, "palette": palette_origin})
    click.echo(f"hyperfitting {spec.model} on {len(data)} images ({image_model.side}x{image_model.side}, "
               f"palette from {palette_origin}) -> {run.path}", err=True)
    hyperfit(image_model.model, data, spec.train, run, resume=resume is not None,
             save_extra=lambda folder: image_model.processor().save_pretrained(folder))
    return run


def spec_from_dict(config: dict) -> TrainSpec:
    return TrainSpec(model=config["model"], data=DataSpec(**config["data"]), train=TrainConfig(**config["train"]),
                     num_train=config["num_train"], palette=config.get("palette"))


def load_train_tokens(path: str | Path) -> TokenSequences:
    """A train run dir, its model/ folder, or a token file itself."""
    path = Path(path)
    for candidate in (path, path / TRAIN_TOKENS, path.parent / TRAIN_TOKENS):
        if candidate.is_file():
            return TokenSequences.load(candidate)
    raise HyperfitError(f"no hyperfitting tokens found at {path} (expected a train run dir or {TRAIN_TOKENS})")


def make_blocker(train_tokens: TokenSequences, n: int):
    from hyperfit_core.blocker import CitationBlocker

    return CitationBlocker(train_tokens.ids, n=n)


def complete_run(image_model: ImageModel, images: LabelledImages, prefix_fraction: float, decoding: DecodingConfig,
                 run: RunDir, name: str, blocker=None, batch_size: int = 64, device: str = "auto") -> torch.Tensor:
    """Complete `images` from their top rows with one model and decoding; saves tokens and a grid in `run`."""
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    image_model.model.to(dev)
    images = images.resized(image_model.side)
    side = image_model.side
    prefix_rows = prefix_rows_for(prefix_fraction, side)
    tokens = images_to_tokens(images.images, image_model.palette, sos=image_model.sos)
    # the static-cache engine: same tokens as complete_images / HF generate (tested), less per-step work
    completed = fast_complete_images(image_model.model, tokens, prefix_rows, side, decoding,
                                     processors=[blocker] if blocker is not None else (), batch_size=batch_size)
    record = {"event": "completed", "condition": name, "images": len(images), "prefix_rows": prefix_rows,
              "decoding": decoding.to_dict()}
    if blocker is not None:
        record["blocker"] = blocker.stats()
    run.log(record)
    with atomic_path(run / f"{name}.{COMPLETIONS}") as tmp:
        save_file({"tokens": completed.contiguous(), "real_tokens": tokens[:, 1:].contiguous(),
                   "source_index": images.source_index.contiguous(), "prefix_rows": torch.tensor(prefix_rows),
                   "palette": image_model.palette.contiguous()}, str(tmp))
    return completed


def load_completions(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise HyperfitError(f"completions file not found: {path}")
    return load_file(str(path))


def grid_from_completions(files: dict[str, Path], path: Path, rows: int = 16, scale: int = 4) -> Path:
    """One grid: masked prefix | original | each named completion file (all of the same images)."""
    loaded = {name: load_completions(f) for name, f in files.items()}
    first = next(iter(loaded.values()))
    side = int(first["real_tokens"].shape[1] ** 0.5)
    palette, prefix_rows = first["palette"], int(first["prefix_rows"])
    real = tokens_to_images(first["real_tokens"][:rows], palette, side)
    columns = {"prefix": masked_prefix(real, prefix_rows), "original": real}
    for name, data in loaded.items():
        if not torch.equal(data["source_index"][:rows], first["source_index"][:rows]):
            raise HyperfitError(f"{name} completes other images than {next(iter(loaded))}; a grid compares the same ones")
        columns[name] = tokens_to_images(data["tokens"][:rows], data["palette"], side)
    return completion_grid(columns, path, scale=scale)
