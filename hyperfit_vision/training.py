"""The vision side of the one recipe (hyperfit_core.recipe): images -> ImageGPT token sequences.

`spec.data` is an `ImageSource` as a dict; `spec.options` is a `VisionTrainOptions` (the palette). The palette
actually used is saved as palette.json in the run dir, so a resume (which reloads the saved tokens) never re-fits it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from hyperfit_core.atomic import write_json
from hyperfit_core.options import option
from hyperfit_core.formats import PALETTE
from hyperfit_core.recipe import Prepared, TrainSpec, select_items, train_run
from hyperfit_core.rundir import RunDir
from hyperfit_core.sequences import TokenSequences
from hyperfit_vision.data import ImageSource, LabelledImages
from hyperfit_vision.model import ImageModel, load_imagegpt
from hyperfit_vision.tokens import images_to_tokens


@dataclass
class VisionTrainOptions:
    """The vision adapter's own train options (TrainSpec.options), each declared once: `vision train` derives its
    options from these."""

    palette: str | None = option(None, "k x 3 colours (.npy/.json/.txt) when the model has no image processor "
                                       "(default: the model's own, else a k-means fit on the training images).",
                                 kind=str, click_type=click.Path(exists=True, dir_okay=False))


def image_sequences(images: LabelledImages, image_model: ImageModel) -> TokenSequences:
    """[SOS, p0 .. p_{side*side-1}] per image, at the model's side and palette; checked against its positions."""
    images = images.resized(image_model.side)
    data = TokenSequences(images_to_tokens(images.images, image_model.palette, sos=image_model.sos),
                          images.source_index)
    data.check_fits(image_model.model.config.n_positions)
    return data


def _prepared(image_model: ImageModel, data: TokenSequences | None, spec: TrainSpec, info: dict) -> Prepared:
    def write_palette(run: RunDir) -> None:
        if run.writer:
            write_json(run / PALETTE, image_model.palette.tolist())

    return Prepared(model=image_model.model, data=data, info=info,
                    describe=f"hyperfitting {spec.model} on {spec.num_train} images "
                             f"({image_model.side}x{image_model.side}, palette from {info.get('palette', 'run')})",
                    save_extra=lambda folder: image_model.processor().save_pretrained(folder),
                    write_extra=write_palette)


class VisionModality:
    name = "vision"
    options = VisionTrainOptions

    def prepare(self, spec: TrainSpec) -> Prepared:
        images = ImageSource(**spec.data).load()
        chosen = images.subset(select_items(len(images), spec.num_train, spec.resolved_data_seed, "training images"))
        image_model, palette_origin = load_imagegpt(spec.model, spec.options.palette,
                                                    fit_images=chosen.images, seed=spec.train.seed)
        for note in images.notes:
            click.echo(f"note: {note}", err=True)
        data = image_sequences(chosen, image_model)
        info = {"palette": palette_origin, "side": image_model.side, "conversions": images.notes,
                "log": {"images": len(data), "side": image_model.side, "palette": palette_origin}}
        return _prepared(image_model, data, spec, info)

    def reload(self, spec: TrainSpec, run: RunDir) -> Prepared:
        image_model, _ = load_imagegpt(spec.model, str(Path(run.path) / PALETTE))
        return _prepared(image_model, None, spec, {})


def train_images(spec: TrainSpec | None, out: str | Path = "runs", **kwargs) -> RunDir:
    """hyperfit_core.recipe.train_run for images (kwargs: resume, at, name, command)."""
    return train_run(spec, VisionModality(), out, **kwargs)

