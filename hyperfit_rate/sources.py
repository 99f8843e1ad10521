"""The runs a study compares, read straight from their files.

Which files are conditions, and how each is read, every modality says in its adapter's `Rating`
(hyperfit_core.adapters: the `hyperfit.modalities` entry points; no adapter is imported here). The page shows
two kinds, and the built-in modalities write each kind's own file:

Images: `NAME.completions.safetensors` (written by `vision complete`, `vision benchmark`, `vision demo`) holds
`tokens` (N, side*side palette ids of the completed images), `real_tokens` (the originals), `source_index`,
`prefix_rows` and `palette` (k x 3, 0..255). Text: `NAME.generations.jsonl` (written by `text generate`), one
JSON object a line whose `display` texts (`context`, `continuation`, `reference`: no special tokens, the
reference cut to the continuation's token count) are what raters see. Every file is one condition; the original
(real image / reference text) is the same in all of them, and for text every continuation has the same length
and a reference at least as long, or the study is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hyperfit_core.adapters import Rating, adapters, load_object
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import (RUN_CONFIG, condition_files, condition_name, iter_jsonl, palette_rgb,
                                   read_completions, read_run_config, tokens_to_rgb)

RESERVED = ("original", "broken")  # version names the study itself uses
TEXT_PARTS = ("context", "continuation", "reference")


@dataclass
class TextRuns:
    """Text conditions over the same contexts: continuations[name][i] continues contexts[i]."""

    contexts: list[str]
    references: list[str]  # cut to the continuations' length by `text generate`
    continuations: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    new_tokens: int = 0  # every continuation's length in tokens
    special_tokens: dict[str, int] = field(default_factory=dict)  # per version: texts that held some (not shown)
    contexts_with_special_tokens: int = 0
    kind: str = "text"

    def __len__(self) -> int:
        return len(self.contexts)


@dataclass
class ImageRuns:
    """Image conditions over the same images: uint8 (N, side, side, 3) arrays, the first prefix_rows given."""

    originals: np.ndarray
    prefix_rows: int
    source_index: list[int]
    palette: np.ndarray
    completions: dict[str, np.ndarray] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    kind: str = "images"

    def __len__(self) -> int:
        return len(self.originals)


def _ratings() -> dict[str, Rating]:
    return {name: adapter.rating for name, adapter in adapters().items() if adapter.rating is not None}


def _run_files(path: Path) -> tuple[Rating, list[Path]]:
    """(the modality's Rating, its condition files) of one run dir, or one clear error."""
    if not path.exists():
        raise HyperfitError(f"run dir not found: {path}")
    if not path.is_dir():
        raise HyperfitError(f"not a run dir (a folder with {RUN_CONFIG}): {path}")
    command = read_run_config(path).get("command")
    ratings = _ratings()
    found = [(rating, files) for rating in ratings.values() if (files := condition_files(path, rating.files))]
    if len(found) > 1:
        raise HyperfitError(f"{path} holds {' and '.join(r.what for r, _ in found)} conditions; rate one kind at a "
                            "time")
    if not found:
        kinds = ", ".join(f"*.{r.files} ({name})" for name, r in ratings.items())
        raise HyperfitError(f"{path} is a `{command}` run with no condition files to rate; rate reads "
                            f"{kinds or 'what an installed modality declares, and none is installed'}")
    return found[0]


def _condition_name(file: Path, kind: str, taken: set[str]) -> str:
    name = condition_name(file, kind)
    if name in taken or name in RESERVED:  # the same condition name in two runs: tell them apart by run dir
        name = f"{file.parent.name}/{name}"
    if name in taken:
        raise HyperfitError(f"{file} is given twice")
    taken.add(name)
    return name


def load_runs(paths) -> TextRuns | ImageRuns:
    """All conditions of the given run dirs; refuses mixed kinds and runs over different prompts or images."""
    if not paths:
        raise HyperfitError("give at least one run dir with --runs")
    found = [(Path(p),) + _run_files(Path(p)) for p in paths]
    rating, first = found[0][1], found[0][0]
    for path, other, _ in found[1:]:
        if other != rating:
            raise HyperfitError(f"cannot mix {rating.what} and {other.what} runs in one study ({first} is "
                                f"{rating.what}, {path} is {other.what})")
    files = [f for _, _, fs in found for f in fs]
    return _load_images(files, rating) if rating.shows == "images" else _load_texts(files, rating)


def _read_with(rating: Rating, file: Path):
    """What the modality's own reader makes of one of its files; its failure is one line, not a traceback."""
    reader = load_object(rating.read, f"the {rating.what} reader")
    try:
        return reader(file)
    except HyperfitError:
        raise
    except Exception as exc:
        raise HyperfitError(f"{file}: the {rating.what} reader ({rating.read}) failed: "
                            f"{type(exc).__name__}: {exc}") from None


def _read_image_file(file: Path, rating: Rating) -> dict:
    data = _read_with(rating, file) if rating.read else read_completions(file)
    side = math.isqrt(data["real_tokens"].shape[1])
    return {"completed": tokens_to_rgb(data["tokens"], data["palette"], side),
            "original": tokens_to_rgb(data["real_tokens"], data["palette"], side),
            "prefix_rows": data["prefix_rows"], "source_index": data["source_index"].tolist(),
            "palette": palette_rgb(data["palette"])}


def _load_images(files: list[Path], rating: Rating) -> ImageRuns:
    runs, taken, first_file = None, set(), None
    for file in files:
        data = _read_image_file(file, rating)
        if runs is None:
            runs = ImageRuns(data["original"], data["prefix_rows"], data["source_index"], data["palette"])
            first_file = file
        elif (data["source_index"] != runs.source_index or data["original"].shape != runs.originals.shape
              or not np.array_equal(data["original"], runs.originals) or data["prefix_rows"] != runs.prefix_rows):
            raise HyperfitError(f"{file} completes other images (or from other rows) than {first_file}; "
                                "a study compares conditions on the same images")
        name = _condition_name(file, rating.files, taken)
        runs.completions[name] = data["completed"]
        runs.files[name] = str(file)
    if len(runs) == 0:
        raise HyperfitError(f"{first_file} holds no images")
    return runs


def _text_rows(file: Path, rating: Rating):
    """(where, row) of each item of a text condition: its line, or its place in what the modality's reader gave."""
    if rating.read is None:
        return [(f"{file}:{number}", row) for number, row in iter_jsonl(file)]
    rows = _read_with(rating, file)
    return [(f"{file} item {number}", row) for number, row in enumerate(rows, 1)]


def _read_text_file(file: Path, rating: Rating) -> list[dict]:
    rows = []
    for where, row in _text_rows(file, rating):
        if not isinstance(row, dict) or not all(isinstance(row.get(key), dict) and
                                                all(isinstance(row[key].get(part), kinds) for part in TEXT_PARTS)
                                                for key, kinds in (("display", str), ("tokens", int),
                                                                   ("special_tokens", int))):
            raise HyperfitError(f"{where} needs display, tokens and special_tokens (each with context, "
                                "continuation and reference), as `hyperfit text generate` writes them; "
                                "generate older runs again")
        rows.append(row)
    if not rows:
        raise HyperfitError(f"{file} holds no generations")
    return rows


def _continuation_length(file: Path, rows: list[dict]) -> int:
    """The continuations' length in tokens; refuses what would unblind the original (none, or a shorter one)."""
    lengths = sorted({row["tokens"]["continuation"] for row in rows})
    if len(lengths) > 1:
        raise HyperfitError(f"{file} holds continuations of {lengths} tokens; a study compares texts of one length")
    missing = sum(row["tokens"]["reference"] == 0 or not row["display"]["reference"].strip() for row in rows)
    if missing:
        raise HyperfitError(f"{file}: {missing} of {len(rows)} prompts have no reference continuation (prompts "
                            "from --prompts have none), so there is no original to rate against; generate from the "
                            "train run's prompts or --prompts-from a corpus")
    shortest = min(row["tokens"]["reference"] for row in rows)
    if shortest < lengths[0]:
        raise HyperfitError(f"{file}: a reference has {shortest} tokens, fewer than the {lengths[0]}-token "
                            "continuations, so raters could tell the original by its length; generate with "
                            f"--max-new-tokens {shortest} or less")
    return lengths[0]


def _load_texts(files: list[Path], rating: Rating) -> TextRuns:
    runs, taken, first_file = None, set(), None
    for file in files:
        rows = _read_text_file(file, rating)
        length = _continuation_length(file, rows)
        shown = [row["display"] for row in rows]
        contexts, references = [s["context"] for s in shown], [s["reference"] for s in shown]
        if runs is None:
            runs, first_file = TextRuns(contexts, references, new_tokens=length), file
            runs.contexts_with_special_tokens = sum(row["special_tokens"]["context"] > 0 for row in rows)
            runs.special_tokens["original"] = sum(row["special_tokens"]["reference"] > 0 for row in rows)
        elif length != runs.new_tokens:
            raise HyperfitError(f"{file} continues by {length} tokens, {first_file} by {runs.new_tokens}; "
                                "conditions of different lengths could be told apart by it: generate them with "
                                "the same --max-new-tokens")
        elif contexts != runs.contexts or references != runs.references:
            raise HyperfitError(f"{file} continues other prompts than {first_file}; "
                                "a study compares conditions on the same prompts")
        name = _condition_name(file, rating.files, taken)
        runs.continuations[name] = [s["continuation"] for s in shown]
        runs.special_tokens[name] = sum(row["special_tokens"]["continuation"] > 0 for row in rows)
        runs.files[name] = str(file)
    return runs
