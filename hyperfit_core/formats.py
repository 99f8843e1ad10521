"""The files of a run dir, named, read and written one way for the whole project. Torch-free on purpose:
hyperfit_rate reads run dirs with it (numpy and safetensors.numpy only); the torch side converts at its edge.

Every file name below is spelled here and nowhere else (tests/test_layout.py checks the packages and
scripts for them). A run dir (hyperfit_core.rundir) holds:

    config.json                   RunDir.write_config: {"config", "seed", "command", "versions", "created"}
    metrics.jsonl                 RunDir.log: one event a line
    train_config.json             the TrainConfig the training loop was given (written with model/)
    train_tokens.safetensors      a train run's exact sequences (hyperfit_core.sequences.TokenSequences)
    prompts.safetensors           a text train run's held-out spans (hyperfit_text.sampling.HeldOut)
    palette.json                  a vision train run's palette: k x [r, g, b], pixel units
    model/                        transformers' save_pretrained folder (its own config.json)
    NAME.completions.safetensors  one image condition: tokens, real_tokens, source_index, prefix_rows, palette
    NAME.generations.safetensors  one text condition's token ids; NAME.generations.jsonl its decoded texts
    NAME.inception.safetensors    cached FID features of a condition's images ("real" for the originals)
    results.json                  what a scoring command found (text evaluate, vision benchmark, rate results)
    per_item.json                 the same scores per prompt / per image, in input order (text evaluate, benchmark)
    entropy_match.json            analyze --match-entropy: the base's temperature matching the hyperfitted entropy
    ranks.json, ranks.png         analyze --ranks: ranks under the base of a generation's tokens
    layers.json, layers.png       analyze --layers: effective dimension and weight change per block
    swap_blocks.json              in a swap-blocks model folder: which blocks came from which donor

JSON lines: one JSON value a line, lines end at "\\n" only. `json.dumps(..., ensure_ascii=False)` leaves U+2028,
U+2029, U+0085 and the other characters `str.splitlines()` also breaks at (\\v, \\f, \\x1c-\\x1e) raw inside
strings, so a file read with `splitlines()` falls apart at a generation that happens to hold one. JSON itself
never puts a raw "\\n" inside a value.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from hyperfit_core.atomic import atomic_path
from hyperfit_core.errors import HyperfitError

RUN_CONFIG = "config.json"
MODEL_CONFIG = "config.json"  # transformers' CONFIG_NAME: a model folder's config (a test holds them equal)
METRICS = "metrics.jsonl"
TRAIN_CONFIG = "train_config.json"  # the TrainConfig the loop was given, beside the final model
TRAIN_TOKENS = "train_tokens.safetensors"
PROMPTS = "prompts.safetensors"
PALETTE = "palette.json"
RESULTS = "results.json"
PER_ITEM = "per_item.json"  # per-prompt / per-image scores beside results.json (hyperfit_core.scoring)
# one file per condition: NAME.<kind> (condition_file / condition_files / condition_name)
COMPLETIONS = "completions.safetensors"
GENERATIONS = "generations.safetensors"
GENERATION_TEXTS = "generations.jsonl"
FEATURES = "inception.safetensors"
# analyze's mechanism options (hyperfit_core.mechanism)
ENTROPY_MATCH = "entropy_match.json"
ANALYSIS = "analysis.json"  # held-out entropy / perplexity of each model (`analyze`, `evaluate --analysis`)
ANALYSIS_PLOT = "analysis.png"  # its histograms
ANALYSIS_SUMMARY = ("entropy_mean", "perplexity", "top1_accuracy", "top1_prob_mean")  # what stats scripts keep of it
RANKS = "ranks.json"
RANKS_PLOT = "ranks.png"
LAYERS = "layers.json"
LAYERS_PLOT = "layers.png"
SWAP_RECORD = "swap_blocks.json"


# ---------------------------------------------------------------- names ---------------------------------------

def condition_file(folder: str | os.PathLike, name: str, kind: str) -> Path:
    """FOLDER/NAME.<kind>, e.g. condition_file(run, "greedy", COMPLETIONS)."""
    return Path(folder) / f"{name}.{kind}"


def condition_files(folder: str | os.PathLike, kind: str) -> list[Path]:
    """Every NAME.<kind> file of a folder, in name order."""
    return sorted(Path(folder).glob(f"*.{kind}"))


def condition_name(path: str | os.PathLike, kind: str) -> str:
    """NAME of a NAME.<kind> file."""
    name = Path(path).name
    if not name.endswith(f".{kind}"):
        raise HyperfitError(f"{path} is not a *.{kind} file")
    return name[:-len(kind) - 1]


def condition_files_of(path: str | os.PathLike, kind: str) -> dict[str, Path]:
    """{NAME: file} of a run dir's NAME.<kind> files, or of one such file; none found is a HyperfitError. A folder
    holding none but one run dir that holds some (the --out folder of one `complete` / `generate`) means that run
    dir; one holding several is refused, naming them, rather than one of them taken."""
    path = Path(path)
    found = condition_files(path, kind) if path.is_dir() else [path]
    if path.is_dir() and not found:
        runs = {sub: files for sub in sorted(path.iterdir()) if sub.is_dir() and (files := condition_files(sub, kind))}
        if len(runs) > 1:
            raise HyperfitError(f"{path} holds {len(runs)} run dirs with NAME.{kind} files "
                                f"({', '.join(run.name for run in runs)}): name the one meant")
        if runs:
            path, found = next(iter(runs.items()))
    if not found or not all(f.name.endswith(f".{kind}") for f in found):
        raise HyperfitError(f"{path} is not a NAME.{kind} file or a run dir holding some")
    return {condition_name(f, kind): f for f in found}


# ---------------------------------------------------------------- JSON lines ----------------------------------

def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, object]]:
    """(line number, value) of each non-blank line; a line that is not JSON is a HyperfitError naming path:line."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HyperfitError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except OSError as exc:
        raise HyperfitError(f"cannot read {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)  # a trailing "\r" (a file saved with CRLF) is JSON whitespace
        except json.JSONDecodeError as exc:
            raise HyperfitError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
        except RecursionError:
            raise HyperfitError(f"{path}:{number}: not a JSON line (nested too deeply)") from None
        yield number, value


def read_jsonl(path: str | os.PathLike) -> list:
    """Every value of a JSON-lines file, blank lines skipped."""
    return [value for _, value in iter_jsonl(path)]


def jsonl_line(value, **dumps_options) -> str:
    """One value as one line (with its "\\n"); non-ASCII text stays as it is unless ensure_ascii=True is given."""
    return json.dumps(value, **{"ensure_ascii": False, **dumps_options}) + "\n"


def write_jsonl(path: str | os.PathLike, values: Iterable) -> Path:
    """A whole JSON-lines file, written atomically (temp + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(jsonl_line(value) for value in values), encoding="utf-8")
    return Path(path)


def append_jsonl(path: str | os.PathLike, value, **dumps_options) -> None:
    """One more line at the end of a JSON-lines file, written whole and flushed (metrics.jsonl grows so)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(jsonl_line(value, **dumps_options))
        f.flush()


# ---------------------------------------------------------------- run config ----------------------------------

def read_json_object(path: str | os.PathLike) -> dict:
    """A JSON file holding an object (a run's config.json, analysis.json, a checkpoint's state); one clear error
    line naming the file when it cannot be read, is not JSON, or holds something else."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HyperfitError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not isinstance(record, dict):
        raise HyperfitError(f"cannot read {path}: not a JSON object")
    return record


def read_run_config(run_dir: str | os.PathLike) -> dict:
    """The config.json record of a run dir; one clear error when there is none or it is not a JSON object."""
    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        raise HyperfitError(f"{run_dir} is not a run dir (no {RUN_CONFIG})")
    return read_json_object(path)


def last_epoch_loss(run_dir: str | os.PathLike) -> dict:
    """{"epochs": epochs run, "mean_loss": the last one's mean loss (None before the first)} from a train run's
    metrics.jsonl: the loss a run reached, whether or not it reached its target."""
    epochs = [r for r in read_jsonl(Path(run_dir) / METRICS) if isinstance(r, dict) and r.get("event") == "epoch"]
    return {"epochs": len(epochs), "mean_loss": epochs[-1]["mean_loss"] if epochs else None}


def read_analysis_summary(path: str | os.PathLike) -> dict:
    """{model: {entropy_mean, perplexity, top1_accuracy, top1_prob_mean}} from an analysis.json: the held-out numbers
    the stats scripts put beside each model (the histograms and positions stay in the run)."""
    record = read_json_object(path)
    try:
        return {model: {k: blob[k] for k in ANALYSIS_SUMMARY} for model, blob in record.items()
                if isinstance(blob, dict) and "entropy_mean" in blob}
    except KeyError as exc:
        raise HyperfitError(f"cannot read {path}: a model's numbers lack {exc}") from None


# ---------------------------------------------------------------- image completions ---------------------------

def write_completions(path: str | os.PathLike, *, tokens, real_tokens, source_index, prefix_rows: int,
                      palette) -> Path:
    """NAME.completions.safetensors: completed and real palette ids (N, side*side), which images they were, how
    many rows were given, and the palette (k x 3, pixel units). numpy arrays (torch callers pass .numpy())."""
    arrays = {"tokens": np.ascontiguousarray(tokens, dtype=np.int64),
              "real_tokens": np.ascontiguousarray(real_tokens, dtype=np.int64),
              "source_index": np.ascontiguousarray(source_index, dtype=np.int64),
              "prefix_rows": np.asarray(prefix_rows, dtype=np.int64),
              "palette": np.ascontiguousarray(palette, dtype=np.float32)}
    from safetensors.numpy import save_file

    with atomic_path(path) as tmp:
        save_file(arrays, str(tmp))
    return Path(path)


def read_completions(path: str | os.PathLike) -> dict:
    """A completions file, checked: {tokens, real_tokens: int64 (N, side*side) palette ids, source_index: int64
    (N,), prefix_rows: int, palette: (k, 3)}. A missing, foreign or truncated file is one HyperfitError."""
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.is_file():
        raise HyperfitError(f"completions file not found: {path}")
    try:
        data = load_file(str(path))
    except Exception as exc:  # a truncated or foreign file: one line, not a traceback
        raise HyperfitError(f"cannot read completions {path}: {exc}") from None
    missing = {"tokens", "real_tokens", "prefix_rows", "palette"} - set(data)
    if missing:
        raise HyperfitError(f"{path} is not a completions file (missing {', '.join(sorted(missing))})")
    tokens, real, palette = data["tokens"].astype(np.int64), data["real_tokens"].astype(np.int64), data["palette"]
    side = math.isqrt(real.shape[-1]) if real.ndim == 2 else 0
    if real.ndim != 2 or side * side != real.shape[1] or tokens.shape != real.shape:
        raise HyperfitError(f"{path}: tokens {tokens.shape} and real_tokens {real.shape} are not square images")
    if palette.ndim != 2 or palette.shape[1] != 3:
        raise HyperfitError(f"{path}: palette must be k x 3, got {palette.shape}")
    for name, ids in (("tokens", tokens), ("real_tokens", real)):
        if ids.size and (ids.min() < 0 or ids.max() >= len(palette)):
            raise HyperfitError(f"{path}: {name} must be palette indices in [0, {len(palette)})")
    source = data.get("source_index", np.arange(len(real))).astype(np.int64).reshape(-1)
    return {"tokens": tokens, "real_tokens": real, "source_index": source, "palette": palette,
            "prefix_rows": int(np.asarray(data["prefix_rows"]).reshape(-1)[0])}


# ---------------------------------------------------------------- palette decoding ----------------------------

def palette_rgb(palette) -> np.ndarray:
    """A k x 3 palette in pixel units as the uint8 colours it shows (rounded half to even, clipped to 0..255)."""
    return np.clip(np.rint(np.asarray(palette, dtype=np.float64)), 0, 255).astype(np.uint8)


def tokens_to_rgb(tokens, palette, side: int) -> np.ndarray:
    """(N, side*side) palette ids -> uint8 (N, side, side, 3) pixels. Exact inverse for palette colours."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[1] != side * side:
        raise HyperfitError(f"expected (N, {side * side}) pixel tokens, got shape {tuple(tokens.shape)}")
    colours = palette_rgb(palette)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= len(colours)):
        raise HyperfitError(f"token ids must lie in [0, {len(colours)}) to map to colours")
    return colours[tokens.astype(np.int64)].reshape(len(tokens), side, side, 3)
