"""The value a `<!-- numbers from ... -->` spec names in its JSON (docs/numbers.md; used by check_docs_numbers.py).

Run alone, it prints what a path gives, which helps to write a spec:

    python scripts/docs_numbers_paths.py docs/measurements/text_results.json "runs/*/ttr_tokens_last64 |max"
"""

from __future__ import annotations

import fnmatch
import json
import re
import statistics
import sys
from pathlib import Path

from hyperfit_core.metric_registry import find_key


class SpecError(Exception):
    pass


def _step(value, key: str):
    if key == "*":
        items = value.values() if isinstance(value, dict) else value
        return list(items), True
    if "*" in key:  # a pattern fans out over the dict's matching keys
        return [v for k, v in value.items() if fnmatch.fnmatchcase(k, key)], True
    if re.fullmatch(r"-?\d*\.\.-?\d*", key):  # a slice a..b (Python's a:b) fans out over those items
        a, b = (int(x) if x else None for x in key.split(".."))
        return value[a:b], True
    if key.startswith("[") and key.endswith("]"):
        want = dict(part.split("=", 1) for part in key[1:-1].split(","))
        hits = [item for item in value if all(_same(item.get(k), v) for k, v in want.items())]
        if len(hits) != 1:
            raise SpecError(f"{key} matches {len(hits)} items, not 1")
        return hits[0], False
    if isinstance(value, list):
        return value[int(key)], False
    if key not in value:
        # a metric under another spelling (docs name a committed JSON's old key, a rerun writes the registered one,
        # or the reverse): hyperfit_core/metric_registry.py says which keys name one metric
        other = find_key(value, key) if isinstance(value, dict) else None
        if other is None:
            raise SpecError(f"no key {key!r} (keys: {', '.join(map(str, list(value)[:12]))})")
        key = other
    return value[key], False


def _same(field_value, text: str) -> bool:
    try:
        return float(field_value) == float(text)
    except (TypeError, ValueError):
        return str(field_value) == text


def resolve(data, path: str):
    """The value at `path`: a scalar, or a flat list when the path fans out."""
    values, fanned = [data], isinstance(data, list) and path.split("/")[0] == "*"
    parts = path.split("/")
    while parts:
        key = parts.pop(0)
        if parts and values and all(isinstance(v, dict) and key not in v and find_key(v, f"{key}/{parts[0]}")
                                    for v in values):
            key = f"{key}/{parts.pop(0)}"  # a metric an older file nested ("overlap/mean_span"), now flat
        nxt = []
        optional = key.endswith("?") and len(key) > 1  # `key?`: items without that key are left out
        key = key.rstrip("?") if optional else key
        for value in values:
            if optional and isinstance(value, dict) and key not in value:
                continue
            got, fan = _step(value, key)
            nxt.extend(got) if fan else nxt.append(got)
        values = nxt
        fanned = fanned or "*" in key or ".." in key
    return values if fanned else values[0]


def _clock(text: str) -> float:
    h, m, s = (int(x) for x in text.split()[0].split(":"))
    return 3600 * h + 60 * m + s


def apply_op(value, op: str, lookup):
    lists = {"mean": statistics.mean, "median": statistics.median, "sd": statistics.stdev, "min": min, "max": max,
             "sum": sum, "len": len}
    if op in lists:
        return lists[op]([v for v in value if v is not None])
    if op == "diff":
        return [b - a for a, b in zip(value, value[1:])]
    if op in ("n<0", "n>0"):  # how many items are negative / positive (e.g. in how many seeds a number fell)
        return sum(1 for v in value if (v < 0 if op == "n<0" else v > 0))
    scalar = {"1-": lambda v: 1 - v, "clock": _clock, "round": round}
    if op in scalar:
        fn = scalar[op]
    elif op[:2] == "//" or (op[:1] in "*/-+%" and len(op) > 1):
        sign = "//" if op[:2] == "//" else op[0]
        operand = op[len(sign):]
        k = lookup(operand[1:]) if operand.startswith("@") else float(operand)
        arith = {"*": lambda a, b: a * b, "/": lambda a, b: a / b, "-": lambda a, b: a - b,
                 "+": lambda a, b: a + b, "//": lambda a, b: a // b, "%": lambda a, b: a % b}[sign]
        if isinstance(value, list) and isinstance(k, list):  # two lists: item by item
            if len(value) != len(k):
                raise SpecError(f"{op!r}: lists of {len(value)} and {len(k)} items")
            return [arith(a, b) for a, b in zip(value, k)]
        if isinstance(k, list):  # a list against one number: its mean, as a list is printed
            k = statistics.mean(k)
        fn = lambda v: arith(v, k)  # noqa: E731
    else:
        raise SpecError(f"unknown op {op!r}")
    return [fn(v) for v in value] if isinstance(value, list) else fn(value)


def lookup(sources: dict, path: str):
    alias, sep, rest = path.partition(":")
    alias, rest = (alias, rest) if sep else ("", path)
    if alias not in sources:
        raise SpecError(f"unknown source alias {alias!r}")
    return resolve(sources[alias], rest)


def expected_parts(spec: str, sources: dict, row_key: str | None) -> list[tuple[str, bool, object]]:
    """(path as written, each, value) per ` ; `-separated part of a spec."""
    parts = []
    for part in spec.split(" ; "):
        part = part.replace("{row}", row_key or "").strip()
        if part == "label":  # a number that names something (seed 2, 4-gram): skipped, not checked
            parts.append((part, False, "label"))
            continue
        each = part.startswith("each ")
        path, *ops = [p.strip() for p in part.removeprefix("each ").split("|")]
        value = lookup(sources, path)
        for op in ops:
            value = apply_op(value, op, lambda other: lookup(sources, other))
        parts.append((part, each, value))
    return parts


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    from check_docs_numbers import _load_sources  # the checker's reading: a .jsonl file's rows, a glob's files
    from docs_numbers_paths import SpecError as ImportedSpecError  # the checker's (this file is __main__ here)

    try:
        sources = _load_sources(Path.cwd(), [sys.argv[1]])
        print(expected_parts(sys.argv[2], sources, None)[0][2])
    except (SpecError, ImportedSpecError, ValueError, OSError) as exc:
        sys.exit(f"error: {exc}")
