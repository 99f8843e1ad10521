"""Check the numbers printed in README.md and docs/*.md against the committed JSON they come from (issue 27).

A checked table or sentence follows an HTML comment (invisible when rendered) that names its JSON and says which
JSON value each printed number is; `docs/numbers.md` describes that small language. A printed number matches when
it is the JSON value rounded to the printed digits (within half a unit of its last digit); `±` is the sample sd.

    python scripts/check_docs_numbers.py            # exit 1 and one line per mismatch: file:line, printed, JSON
"""

from __future__ import annotations

import functools
import glob
import json
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling docs_numbers_paths.py, also under runpy
from docs_numbers_paths import SpecError, expected_parts  # noqa: E402

from hyperfit_core.errors import HyperfitError  # noqa: E402
from hyperfit_core.formats import read_jsonl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMMENT = re.compile(r"<!--\s*numbers from\s+(.*?)-->", re.S)
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
# a number not glued to a word (seq-rep-4, fp32, BLEU-4 and x20 are names, not numbers); 27-57 is two numbers
NUMBER = re.compile(r"(?<![A-Za-z_.\d])(?<![A-Za-z]-)[+\-−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")
PLUS_MINUS = re.compile(r"\s*(?:\*\*)?\s*±")


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
        if raw[0] in "+-−" and match.start() > 0 and not text[match.start() - 1] in " ([\t/":  # "[-0.1, +0.2]": an interval's signs
            raw = raw[1:]  # a dash joining two numbers, not a sign
        body = raw.replace("−", "-").replace(",", "")
        mantissa, _, exponent = body.lower().partition("e")
        decimals = len(mantissa.partition(".")[2]) - (int(exponent) if exponent else 0)
        out.append((raw, float(body), 0.5 * 10.0 ** -decimals, bool(PLUS_MINUS.match(text, match.end()))))
    return out


def compare(printed: list, parts: list) -> tuple[list[str], int]:
    """Mismatch messages (none when every printed number is its JSON value at the printed precision) and how many
    printed numbers were compared with a JSON value."""
    problems, i, compared = [], 0, 0
    for path, each, value in parts:
        if value == "label":
            if i >= len(printed):
                problems.append("nothing printed for a label")
            i += 1
            continue
        wanted = []
        if each:
            wanted = [(v, path) for v in value]
        elif isinstance(value, list):
            values = [v for v in value if v is not None]
            if values:
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
            i, compared = i + 1, compared + 1
            if not isinstance(want, (int, float)) or abs(number - want) > half_unit * (1 + 1e-9) + 1e-12:
                problems.append(f"printed {raw}, but {what} = {want if isinstance(want, str) else f'{want:.6g}'}")
    if i < len(printed):
        problems.append(f"printed {' '.join(p[0] for p in printed[i:])} with no JSON value in the spec")
    return problems, compared


def _checked(spec: str, printed: list, sources: dict, row_key: str | None) -> tuple[list[str], int]:
    try:
        return compare(printed, expected_parts(spec, sources, row_key))
    except (SpecError, KeyError, IndexError, TypeError, ValueError, statistics.StatisticsError) as err:
        return [f"spec {spec!r}: {type(err).__name__}: {err}"], 0


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
        return read_jsonl(path)
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
            problems, compared = _checked(spec, printed, sources, rows.get(label, label))
            report.errors += [f"{doc}:{i + 1}: [{label} | {header}] {p}" for p in problems]
            report.numbers += compared
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
    problems, compared = _checked(spec, printed_numbers(claim), sources, None)
    report.numbers += compared
    report.errors += [f"{doc}:{line}: \"{claim}\": {p}" for p in problems]


def check(root: Path = ROOT) -> Report:
    report = Report()
    for doc in doc_files(root):
        if not doc.is_file():
            continue
        text = doc.read_text()
        name = doc.relative_to(root)
        fences = [m.span() for m in FENCE.finditer(text)]
        for block in COMMENT.finditer(text):
            if any(a <= block.start() < b for a, b in fences):
                continue  # an example inside a code block (docs/numbers.md), not a spec
            try:
                check_block(root, name, text, block, report)
            except (SpecError, json.JSONDecodeError, HyperfitError) as err:  # HyperfitError: a bad JSON line
                line = text.count("\n", 0, block.start()) + 1
                report.errors.append(f"{name}:{line}: numbers comment: {err}")
    return report


def main() -> None:
    report = check(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
    for error in report.errors:
        print(error)
    print(f"{report.numbers} printed numbers checked against JSON in {report.tables} tables and "
          f"{report.claims} sentences; "
          f"{len(report.errors)} mismatches")
    sys.exit(1 if report.errors else 0)


if __name__ == "__main__":
    main()
