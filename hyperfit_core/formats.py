"""JSON lines, read and written one way for the whole project: one JSON value a line, lines end at "\\n" only.

`json.dumps(..., ensure_ascii=False)` leaves U+2028, U+2029, U+0085 and the other characters `str.splitlines()`
also breaks at (\\v, \\f, \\x1c-\\x1e) raw inside strings, so a file read with `splitlines()` falls apart at a
generation that happens to hold one. JSON itself never puts a raw "\\n" inside a value. Torch-free on purpose:
hyperfit_rate reads generations with it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator

from hyperfit_core.atomic import atomic_path
from hyperfit_core.errors import HyperfitError


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
    """One value as one line (with its "\\n"); non-ASCII text stays as it is."""
    return json.dumps(value, ensure_ascii=False, **dumps_options) + "\n"


def write_jsonl(path: str | os.PathLike, values: Iterable) -> Path:
    """A whole JSON-lines file, written atomically (temp + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(jsonl_line(value) for value in values), encoding="utf-8")
    return Path(path)
