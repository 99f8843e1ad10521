"""What a modality adapter plugs into hyperfit, and how hyperfit finds it: the `hyperfit.modalities` entry point
group. A modality is one package plus one entry point (docs/extending.md walks through a whole one):

    [project.entry-points."hyperfit.modalities"]
    yours = "hyperfit_yours.adapter:ADAPTER"

The entry point names an `Adapter`: plain data, in a module that imports no torch (the rating app loads it), so
finding the adapters costs one small import each. Its commands and readers are "module:attribute" strings,
imported only when one of them runs. hyperfit_core names no adapter: the root CLI and `hyperfit rate` learn
them all here. Other command groups that are no modality (`hyperfit rate`) use the `hyperfit.commands` group.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points

from hyperfit_core.errors import HyperfitError, warn

MODALITIES = "hyperfit.modalities"  # entry point group: name -> an Adapter
COMMANDS = "hyperfit.commands"  # entry point group: name -> a click group that is no modality (rate)
SHOWS = ("text", "images")  # what the rating page can show


@dataclass(frozen=True)
class Rating:
    """How `hyperfit rate build` reads one condition of this modality and what raters see of it.

    A run's conditions are its NAME.<files> files (hyperfit_core.formats.condition_files). `shows` is the page's
    kind: "text" items are {"display", "tokens", "special_tokens"} dicts of context / continuation / reference
    (the rows of formats.GENERATION_TEXTS), "images" a formats.read_completions dict. `read`
    ("module:function(path) -> those items") turns the adapter's own file into them; None: the file already is
    the kind's own file. The reader must import no torch: the rating app runs without it."""

    files: str
    shows: str
    what: str  # one word for messages: "text", "image"
    read: str | None = None


@dataclass(frozen=True)
class Adapter:
    """One modality, as its entry point gives it to hyperfit."""

    name: str  # `hyperfit <name> ...`; the entry point's name
    commands: str  # "module:attribute" of its click group (train, continue, score, ...: whatever it offers)
    rating: Rating | None = None  # None: nothing of it can be rated by people


def load_object(spec: str, what: str):
    """The object a "module:attribute" string names; one HyperfitError (naming `what`) when it does not load."""
    module, _, attribute = spec.partition(":")
    try:
        found = importlib.import_module(module)
        for part in attribute.split(".") if attribute else ():
            found = getattr(found, part)
    except Exception as exc:  # a plug-in's own import error is its own: one line, not a traceback
        raise HyperfitError(f"{what} ({spec}) does not load: {type(exc).__name__}: {exc}") from None
    return found


def _load(entry, group: str):
    try:
        return entry.load()
    except Exception as exc:
        warn(f"left out the {group} entry point {entry.name!r} ({entry.value}): {type(exc).__name__}: {exc}")
        return None


@lru_cache(maxsize=None)
def adapters() -> dict[str, Adapter]:
    """Every installed modality by name. An entry point that fails to load, or gives no Adapter of its own name,
    is left out with one warning line naming it (once per process), so the others still work."""
    found: dict[str, Adapter] = {}
    for entry in entry_points(group=MODALITIES):
        adapter = _load(entry, MODALITIES)
        if adapter is None:
            continue
        if not isinstance(adapter, Adapter) or adapter.name != entry.name:
            warn(f"left out the {MODALITIES} entry point {entry.name!r} ({entry.value}): it gives "
                 f"{type(adapter).__name__}, not a hyperfit_core.adapters.Adapter named {entry.name!r}")
        elif entry.name in found or entry.name in command_entries():
            warn(f"left out the {MODALITIES} entry point {entry.name!r} ({entry.value}): `hyperfit {entry.name}` "
                 "is taken")
        elif adapter.rating is not None and adapter.rating.shows not in SHOWS:
            warn(f"left out modality {entry.name!r}: its rating shows {adapter.rating.shows!r}, not one of "
                 f"{', '.join(SHOWS)}")
        else:
            found[entry.name] = adapter
    return found


def command_entries() -> dict:
    """The entry points of the `hyperfit.commands` group (command groups that are no modality), by name."""
    return {entry.name: entry for entry in entry_points(group=COMMANDS)}


def load_commands(adapter: Adapter):
    """The adapter's click group (imported now)."""
    return load_object(adapter.commands, f"the commands of modality {adapter.name!r}")
