"""Check the numbers printed in README.md and docs/*.md against the committed JSON they come from (issue 27).

A checked table, or a checked sentence, is preceded by an HTML comment (invisible when rendered) that names its
JSON and says which JSON value each printed number is:

    <!-- numbers from docs/measurements/text_results.json
    row base greedy => runs/base-greedy
    col TTR tok (last 64) => {row}/ttr_tokens_last64
    col overlap mean/max => {row}/overlap/mean_span ; {row}/overlap/max_span
    col model => -
    cell human reference | TTR tok (last 64) => human_reference/ttr_tokens_last64
    claim TTR 0.49 → 0.67 on Wikipedia => runs/base-greedy/ttr_tokens_last64 ; runs/greedy/ttr_tokens_last64
    -->

`from` takes one JSON (or JSON-lines file: a list of its rows), then optional `alias=path` pairs (a glob is a list of files, in sorted order); a path is
`[alias:]key/key/...` where `*` fans out over a dict's values or a list's items, `[k=v,k2=v2]` picks the one
list item with those fields, a number indexes a list, and `key?` leaves out the items without that key. `row LABEL => KEY` sets `{row}` for that row (default:
the label itself); every column of the table must have a `col` line (`-` = not a number of a JSON); `cell` overrides
one cell; `claim TEXT => SPEC` checks a sentence found anywhere in the same file (whitespace-insensitive).
A SPEC is parts separated by ` ; `, each consuming printed numbers in order: `[each ]PATH[ |op ...]`.
- a scalar is one printed number;
- a list (from `*` or a glob) is printed as its mean, and, when the number is followed by `±`, its sample sd;
- `each` prints every item of the list (`71.7 / 35.5 / 34.8`);
- `label` is a printed number that names something (seed 2, 4-gram) and is not checked.
`a..b` fans out over a slice (Python's a:b). Ops apply to the value (elementwise on a list): `*K`, `/K`, `//K`,
`%K`, `-K`, `+K`, `1-` (1 - x), `mean`, `median`, `sd`, `min`, `max`, `sum`, `len`, `n<0` / `n>0` (how many items are negative / positive), `diff` (consecutive differences),
`clock` (seconds of a leading HH:MM:SS), `round`; `-@PATH` (and `+@`, `*@`, `/@`) takes the other operand
from a path (item by item when both are lists; a list against one number is its mean).
A printed number matches when it equals the JSON value rounded to the printed digits (half a unit of the last
printed digit either way); `%` and `,` are typography.

    python scripts/check_docs_numbers.py            # exit 1 and one line per mismatch: file:line, printed, JSON
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import json
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMENT = re.compile(r"<!--\s*numbers from\s+(.*?)-->", re.S)
# a number not glued to a word (seq-rep-4, fp32, BLEU-4 and x20 are names, not numbers); 27-57 is two numbers
NUMBER = re.compile(r"(?<![A-Za-z_.\d])(?<![A-Za-z]-)[+\-−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")
PLUS_MINUS = re.compile(r"\s*(?:\*\*)?\s*±")


class SpecError(Exception):
    pass


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    numbers: int = 0
    tables: int = 0
    claims: int = 0


def doc_files(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def printed_numbers(text: str) -> list[tuple[str, float, float, bool]]:
    """(as printed, value, half a unit of its last digit, followed by ±) for each number of a cell or sentence."""
    out = []
    text = text.replace("**", "")
    for match in NUMBER.finditer(text):
        raw = match.group(0)
        if raw[0] in "+-−" and match.start() > 0 and not text[match.start() - 1] in " (\t/":
            raw = raw[1:]  # a dash joining two numbers, not a sign
        body = raw.replace("−", "-").replace(",", "")
        mantissa, _, exponent = body.lower().partition("e")
        decimals = len(mantissa.partition(".")[2]) - (int(exponent) if exponent else 0)
        out.append((raw, float(body), 0.5 * 10.0 ** -decimals, bool(PLUS_MINUS.match(text, match.end()))))
    return out


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
        raise SpecError(f"no key {key!r} (keys: {', '.join(map(str, list(value)[:12]))})")
    return value[key], False


def _same(field_value, text: str) -> bool:
    try:
        return float(field_value) == float(text)
    except (TypeError, ValueError):
        return str(field_value) == text


def resolve(data, path: str):
    """The value at `path`: a scalar, or a flat list when the path fans out."""
    values, fanned = [data], isinstance(data, list) and path.split("/")[0] == "*"
    for key in path.split("/"):
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


def compare(printed: list, parts: list) -> list[str]:
    """Mismatch messages; an empty list when every printed number is its JSON value at the printed precision."""
    problems, i = [], 0
    for path, each, value in parts:
        wanted = []
        if value == "label":
            if i >= len(printed):
                problems.append("nothing printed for a label")
            i += 1
            continue
        if each:
            wanted = [(v, path) for v in value]
        elif isinstance(value, list):
            values = [v for v in value if v is not None]
            if not values:
                continue
            wanted = [(statistics.mean(values), f"mean of {path}")]
            if i < len(printed) and printed[i][3]:
                wanted.append((statistics.stdev(values) if len(values) > 1 else 0.0, f"sample sd of {path}"))
        elif value is not None:
            wanted = [(value, path)]
        for want, what in wanted:
            if i >= len(printed):
                problems.append(f"nothing printed for {what} = {want:.6g}")
                continue
            raw, number, half_unit, _ = printed[i]
            i += 1
            if not isinstance(want, (int, float)) or abs(number - want) > half_unit * (1 + 1e-9) + 1e-12:
                problems.append(f"printed {raw}, but {what} = {want if isinstance(want, str) else f'{want:.6g}'}")
    if i < len(printed):
        problems.append(f"printed {' '.join(p[0] for p in printed[i:])} with no JSON value in the spec")
    return problems


def _cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in line.strip().strip("|").replace("\\|", "\x00").split("|")]


def _label(cell: str) -> str:
    return cell.replace("**", "").replace("\x00", "|").strip()


@functools.lru_cache(maxsize=256)
def _read_cached(path: str, mtime_ns: int):
    return _read(Path(path))


def _load_sources(root: Path, words: list[str]) -> dict:
    sources = {}
    for i, word in enumerate(words):
        alias, sep, path = word.partition("=")
        alias, path = (alias, path) if sep else ("" if i == 0 else word, word)
        if any(c in path for c in "*?["):
            files = sorted(glob.glob(str(root / path)))
            if not files:
                raise SpecError(f"no file matches {path}")
            sources[alias] = [_read_cached(f, Path(f).stat().st_mtime_ns) for f in files]
        else:
            if not (root / path).is_file():
                raise SpecError(f"{path} does not exist")
            sources[alias] = _read_cached(str(root / path), (root / path).stat().st_mtime_ns)
    return sources


def _read(path: Path):
    """A JSON file, or a JSON-lines file as the list of its rows."""
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return json.loads(path.read_text())


def check_block(root: Path, doc: Path, text: str, block: re.Match, report: Report) -> None:
    lines = text.splitlines()
    header, *spec_lines = [ln.strip() for ln in block.group(1).strip().splitlines()]
    sources = _load_sources(root, header.split())
    rows, cols, cells, claims = {}, {}, {}, []
    for ln in spec_lines:
        if not ln or ln.startswith("#"):
            continue
        kind, _, rest = ln.partition(" ")
        lhs, sep, rhs = rest.partition(" => ")
        if not sep or kind not in ("row", "col", "cell", "claim"):
            raise SpecError(f"cannot read spec line {ln!r}")
        if kind == "row":
            rows[lhs.strip()] = rhs.strip()
        elif kind == "col":
            cols[lhs.strip()] = rhs.strip()
        elif kind == "cell":
            r, _, c = lhs.partition(" | ")
            cells[(r.strip(), c.strip())] = rhs.strip()
        else:
            claims.append((lhs.strip(), rhs.strip()))
    if rows or cols or cells:
        check_table(doc, lines, text.count("\n", 0, block.end()) + 1, sources, rows, cols, cells, report)
    for claim, spec in claims:
        check_claim(doc, text, claim, spec, sources, report)


def check_table(doc, lines, after, sources, rows, cols, cells, report) -> None:
    first = next((i for i in range(after, len(lines)) if lines[i].lstrip().startswith("|")), None)
    if first is None or "<!-- numbers from" in "\n".join(lines[after:first]):
        raise SpecError(f"no table follows the comment ending at line {after}")
    body = []
    for i in range(first, len(lines)):
        if not lines[i].lstrip().startswith("|"):
            break
        body.append(i)
    headers = [_label(c) for c in _cells(lines[body[0]])]
    unknown = [c for c in cols if c not in headers] + [c for _, c in cells if c not in headers]
    if unknown:
        raise SpecError(f"table at line {first + 1} has no column {unknown[0]!r} (columns: {headers})")
    missing = [h for h in headers[1:] if h and h not in cols]
    if missing:
        raise SpecError(f"table at line {first + 1}: column {missing[0]!r} has no `col` line (`-` to skip it)")
    seen_rows = set()
    report.tables += 1
    for i in body[2:]:
        row = _cells(lines[i])
        label = _label(row[0])
        seen_rows.add(label)
        for header, cell in zip(headers[1:], row[1:]):
            spec = cells.get((label, header), cols.get(header, "-"))
            printed = printed_numbers(cell)
            if spec == "-" or not printed:
                continue
            where = f"{doc}:{i + 1}: [{label} | {header}]"
            try:
                problems = compare(printed, expected_parts(spec, sources, rows.get(label, label)))
            except (SpecError, KeyError, IndexError, TypeError, ValueError, statistics.StatisticsError) as err:
                problems = [f"spec {spec!r}: {type(err).__name__}: {err}"]
            report.errors += [f"{where} {p}" for p in problems]
            report.numbers += len(printed) - (1 if problems and "with no JSON" in problems[-1] else 0)
    absent = [r for r in list(rows) + [r for r, _ in cells] if r not in seen_rows]
    if absent:
        report.errors.append(f"{doc}:{first + 1}: the spec names row {absent[0]!r}, which the table lacks")


@functools.lru_cache(maxsize=16)
def _prose(text: str) -> tuple[str, list[int]]:
    """The text outside the numbers comments with each run of whitespace as one space, and where each of its
    characters was in `text` (a claim may wrap over lines; the spec must not match itself)."""
    hidden = COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    flat, where = [], []
    for pos, ch in enumerate(hidden):
        if ch.isspace():
            if flat and flat[-1] == " ":
                continue
            ch = " "
        flat.append(ch)
        where.append(pos)
    return "".join(flat), where


def check_claim(doc, text, claim, spec, sources, report) -> None:
    flat, where = _prose(text)
    at = flat.find(" ".join(claim.split()))
    report.claims += 1
    if at < 0:
        report.errors.append(f"{doc}: claim not found in the text: {claim!r}")
        return
    line = text.count("\n", 0, where[at]) + 1
    try:
        problems = compare(printed_numbers(claim), expected_parts(spec, sources, None))
    except (SpecError, KeyError, IndexError, TypeError, ValueError, statistics.StatisticsError) as err:
        problems = [f"spec {spec!r}: {type(err).__name__}: {err}"]
    report.numbers += len(printed_numbers(claim))
    report.errors += [f"{doc}:{line}: \"{claim}\": {p}" for p in problems]


def check(root: Path = ROOT) -> Report:
    report = Report()
    for doc in doc_files(root):
        if not doc.is_file():
            continue
        text = doc.read_text()
        name = doc.relative_to(root)
        for block in COMMENT.finditer(text):
            try:
                check_block(root, name, text, block, report)
            except (SpecError, json.JSONDecodeError) as err:
                line = text.count("\n", 0, block.start()) + 1
                report.errors.append(f"{name}:{line}: numbers comment: {err}")
    return report


def main() -> None:
    report = check(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
    for error in report.errors:
        print(error)
    print(f"{report.numbers} printed numbers checked in {report.tables} tables and {report.claims} sentences; "
          f"{len(report.errors)} mismatches")
    sys.exit(1 if report.errors else 0)


if __name__ == "__main__":
    main()
