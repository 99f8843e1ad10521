"""A blinded study: the pairs to rate, their content, and each rater's order and sides.

Pairs compare two *versions* of one item (a prompt or an image): `a` is a condition, `b` the original (the
paper's comparison), or `a`/`b` two conditions (`--condition-vs-condition`), or `a` the original and `b` a
visibly broken copy (an attention check: shuffled words / noise in the generated rows). Raters see only opaque
ids: pair ids and per-pair-side image ids are random, so neither the id nor the image URL says which version
is the original. Each rater gets their own order of the pairs and their own left/right per pair, both derived
from the study's seed, the rater's name and the pair's place in the design (so they are the same when the rater
comes back, and in a rebuild with the same seed).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import random
import secrets
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from pathlib import Path

import numpy as np

from hyperfit_core.atomic import atomic_dir
from hyperfit_core.errors import HyperfitError
from hyperfit_rate.sources import ImageRuns, TextRuns, load_runs
from hyperfit_rate.store import Store

STUDY_JSON = "study.json"
IMAGES = "images"
MASK_GREY = 128


@dataclass(frozen=True)
class BuildOptions:
    seed: int = 0
    pairs_per_condition: int | None = None  # None: every item
    condition_vs_condition: bool = False
    attention_share: float = 0.1


def _opaque() -> str:
    while True:  # never a leading "-": votes.csv would have to escape it as a spreadsheet formula
        token = secrets.token_urlsafe(12)
        if not token.startswith("-"):
            return token


def _broken_text(text: str, rng: random.Random) -> str:
    """The original's words in a random order, visibly not a text a person would write."""
    words = text.split()
    if len(words) < 4:
        words = (words or ["the"]) * 4
    broken = words[:]
    for _ in range(10):
        rng.shuffle(broken)
        if broken != words:
            break
    return " ".join(broken)


def _noisy_image(image: np.ndarray, prefix_rows: int, palette: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The original with its generated rows replaced by random palette colours: visibly broken."""
    out = image.copy()
    rows, side = out[prefix_rows:].shape[:2]
    out[prefix_rows:] = palette[rng.integers(0, len(palette), size=(rows, side))]
    return out


def _pair_plan(n_items: int, conditions: list[str], options: BuildOptions, rng: random.Random) -> list[dict]:
    per = options.pairs_per_condition
    if per is not None and per < 1:
        raise HyperfitError("--pairs-per-condition must be at least 1 (or 'all')")
    if not 0 <= options.attention_share < 0.5:
        raise HyperfitError("--attention-share must be in [0, 0.5)")
    items = list(range(n_items)) if per is None or per >= n_items else sorted(rng.sample(range(n_items), per))
    plan = [{"kind": "vs-original", "a": c, "b": "original", "item": i} for c in conditions for i in items]
    if options.condition_vs_condition:
        plan += [{"kind": "vs-condition", "a": c1, "b": c2, "item": i}
                 for c1, c2 in combinations(conditions, 2) for i in items]
    share = options.attention_share
    n_checks = math.ceil(share * len(plan) / (1 - share) - 1e-9) if share > 0 else 0
    plan += [{"kind": "attention", "a": "original", "b": "broken", "item": rng.randrange(n_items)}
             for _ in range(n_checks)]
    for pair in plan:
        pair["id"] = _opaque()
    return plan


def _text_content(runs: TextRuns, plan: list[dict], rng: random.Random) -> dict:
    items: dict[str, dict] = {}
    for pair in plan:
        i = pair["item"]
        entry = items.setdefault(str(i), {"context": runs.contexts[i], "versions": {}})
        for version in (pair["a"], pair["b"]):
            if version == "original":
                entry["versions"][version] = runs.references[i]
            elif version == "broken":
                entry["versions"].setdefault(version, _broken_text(runs.references[i], rng))
            else:
                entry["versions"][version] = runs.continuations[version][i]
    return {"items": items}


def _image_content(runs: ImageRuns, plan: list[dict], folder: Path, seed: int) -> dict:
    """PNG files for each version of each item used; each pair side and context gets its own opaque id."""
    from PIL import Image

    noise = np.random.default_rng(seed)
    (folder / IMAGES).mkdir()
    files: dict[tuple, str] = {}

    def file_for(version: str, i: int) -> str:
        if (version, i) not in files:
            if version == "original":
                pixels = runs.originals[i]
            elif version == "broken":
                pixels = _noisy_image(runs.originals[i], runs.prefix_rows, runs.palette, noise)
            elif version == "context":
                pixels = runs.originals[i].copy()
                pixels[runs.prefix_rows:] = MASK_GREY
            else:
                pixels = runs.completions[version][i]
            name = f"{IMAGES}/{secrets.token_hex(8)}.png"
            Image.fromarray(np.ascontiguousarray(pixels), "RGB").save(folder / name)
            files[(version, i)] = name
        return files[(version, i)]

    image_files: dict[str, str] = {}
    for pair in plan:
        for slot, version in (("context", "context"), ("a", pair["a"]), ("b", pair["b"])):
            image_id = _opaque()
            image_files[image_id] = file_for(version, pair["item"])
            pair[f"{slot}_image"] = image_id
    return {"image_files": image_files, "prefix_rows": runs.prefix_rows, "side": int(runs.originals.shape[1])}


def build_study(study_dir: str | Path, runs: list, options: BuildOptions = BuildOptions()) -> dict:
    """Write a new study folder (study.json, images/, votes.sqlite) in one rename; never overwrites one."""
    study_dir = Path(study_dir)
    if study_dir.exists():
        raise HyperfitError(f"{study_dir} already exists; a study is never overwritten (its votes live there)")
    loaded = load_runs(runs)
    conditions = list(loaded.files)
    rng = random.Random(options.seed)
    plan = _pair_plan(len(loaded), conditions, options, rng)
    study = {"format": 1, "kind": loaded.kind, "seed": options.seed, "conditions": conditions,
             "files": loaded.files, "items_in_runs": len(loaded),
             "options": {"pairs_per_condition": options.pairs_per_condition,
                         "condition_vs_condition": options.condition_vs_condition,
                         "attention_share": options.attention_share},
             "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "pairs": plan}
    if loaded.kind == "text":  # what raters see is the display text: how long, and what it leaves out
        study["texts"] = {"tokens": loaded.new_tokens, "items": len(loaded),
                          "with_special_tokens_not_shown": {"context": loaded.contexts_with_special_tokens,
                                                            "versions": loaded.special_tokens}}
    try:
        study_dir.parent.mkdir(parents=True, exist_ok=True)
        with atomic_dir(study_dir) as tmp:
            if loaded.kind == "text":
                study.update(_text_content(loaded, plan, rng))
            else:
                study.update(_image_content(loaded, plan, tmp, options.seed))
            (tmp / STUDY_JSON).write_text(json.dumps(study, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            Store.create(tmp / "votes.sqlite")
    except OSError as exc:
        raise HyperfitError(f"cannot write the study {study_dir}: {exc.strerror or exc}") from None
    return study


def _digest(*parts) -> bytes:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()


class Study:
    """A built study, read-only: pair lookup, content, and the per-rater order and sides."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).resolve()  # image paths stay right whatever the working folder is later
        path = self.folder / STUDY_JSON
        if not path.is_file():
            raise HyperfitError(f"{folder} is not a study (no {STUDY_JSON}); make one with `hyperfit rate build`")
        try:
            self.data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:
            raise HyperfitError(f"cannot read {path}: {exc}") from None
        self.kind = self.data["kind"]
        self.seed = self.data["seed"]
        self.pairs = {pair["id"]: pair for pair in self.data["pairs"]}
        self.pair_ids = [pair["id"] for pair in self.data["pairs"]]
        self.position = {pair_id: k for k, pair_id in enumerate(self.pair_ids)}
        self.image_files = self.data.get("image_files", {})
        self._orders = lru_cache(maxsize=1024)(self._order)

    @property
    def conditions(self) -> list[str]:
        return self.data["conditions"]

    def _order(self, rater_name: str) -> tuple[str, ...]:
        # by position in the design, not by the random ids: the same seed gives the same order in a rebuild
        positions = list(range(len(self.pair_ids)))
        random.Random(_digest(self.seed, "order", rater_name)).shuffle(positions)
        return tuple(self.pair_ids[k] for k in positions)

    def order_for(self, rater_name: str) -> tuple[str, ...]:
        """The rater's own order of all pairs (the same every time they come back)."""
        return self._orders(rater_name)

    def left_version(self, rater_name: str, pair_id: str) -> str:
        """'a' or 'b': which version this rater sees on the left of this pair."""
        return "a" if _digest(self.seed, "side", rater_name, self.position[pair_id])[0] & 1 == 0 else "b"

    def image_path(self, image_id: str) -> Path | None:
        """The study's own file for an opaque image id; None for anything else (no request path is joined)."""
        name = self.image_files.get(image_id)
        return self.folder / name if name is not None else None

    def shown(self, rater_name: str, pair_id: str) -> dict:
        """What a rater sees of a pair: context and the two sides, without any version name."""
        pair = self.pairs[pair_id]
        left = self.left_version(rater_name, pair_id)
        right = "b" if left == "a" else "a"
        if self.kind == "text":
            item = self.data["items"][str(pair["item"])]
            return {"id": pair_id, "kind": "text", "context": item["context"],
                    "left": item["versions"][pair[left]], "right": item["versions"][pair[right]]}
        return {"id": pair_id, "kind": "images", "context": pair["context_image"],
                "left": pair[f"{left}_image"], "right": pair[f"{right}_image"]}
