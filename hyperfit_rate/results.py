"""A study's results: attention checks, win-or-tie vs the original, Bradley-Terry ranking, agreement, exports."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hyperfit_core import metric_registry as registry
from hyperfit_core.atomic import atomic_path, ensure_writable_dir, write_text
from hyperfit_core.formats import RESULTS
from hyperfit_rate.stats import bradley_terry, fleiss_kappa, krippendorff_alpha_nominal, wilson_interval
from hyperfit_rate.store import Store
from hyperfit_rate.study import Study

ORIGINAL = "original"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ResultOptions:
    keep_failed: bool = False
    attention_threshold: float = 0.8  # share of attention checks a rater must get right
    bootstrap: int = 1000
    bt_prior: float = 0.5  # virtual ties per pair of players that met (keeps never-winners finite)
    seed: int = 0


def attention_report(study: Study, votes: list[dict], threshold: float) -> dict[str, dict]:
    """Per rater: attention checks answered and passed (the original must be preferred to its broken copy)."""
    report: dict[str, dict] = defaultdict(lambda: {"checks": 0, "passed": 0})
    for vote in votes:
        report[vote["rater"]]  # every rater gets a row
        pair = study.pairs.get(vote["pair_id"])
        if pair is not None and pair["kind"] == "attention":
            report[vote["rater"]]["checks"] += 1
            report[vote["rater"]]["passed"] += int(pair[vote["winner"]] == ORIGINAL if vote["winner"] != "tie" else 0)
    for row in report.values():
        row["status"] = ("unchecked" if row["checks"] == 0 else
                         "passed" if row["passed"] >= threshold * row["checks"] else "failed")
    return dict(report)


def _comparisons(study: Study, votes: list[dict], players: list[str]) -> np.ndarray:
    """(index of version a, index of version b, score of a: 1 win, 0.5 tie, 0 loss) per rated non-check pair."""
    index = {p: i for i, p in enumerate(players)}
    rows = []
    for vote in votes:
        pair = study.pairs.get(vote["pair_id"])
        if pair is None or pair["kind"] == "attention":
            continue
        rows.append((index[pair["a"]], index[pair["b"]], {"a": 1.0, "tie": 0.5, "b": 0.0}[vote["winner"]]))
    return np.array(rows, dtype=float).reshape(-1, 3)


def _bt_fit(n_players: int, original: int, comparisons: np.ndarray, prior: float, tol: float) -> np.ndarray:
    a, b, score = comparisons[:, 0].astype(int), comparisons[:, 1].astype(int), comparisons[:, 2]
    wins = np.zeros((n_players, n_players))
    np.add.at(wins, (a, b), score)
    np.add.at(wins, (b, a), 1 - score)
    strengths = bradley_terry(wins, prior=prior, tol=tol)
    return strengths - strengths[original]  # relative to the original: 0 means "as good"


def bradley_terry_ranking(players: list[str], comparisons: np.ndarray, options: ResultOptions) -> dict[str, dict]:
    """Log-strength of each version relative to the original, with percentile bootstrap intervals over votes."""
    original = players.index(ORIGINAL)
    point = _bt_fit(len(players), original, comparisons, options.bt_prior, 1e-12)
    samples = np.full((1, len(players)), np.nan)
    if len(comparisons) and options.bootstrap > 0:
        rng = np.random.default_rng(options.seed)
        samples = np.array([_bt_fit(len(players), original, comparisons[rng.integers(0, len(comparisons),
                                                                                     len(comparisons))],
                                    options.bt_prior, 1e-9) for _ in range(options.bootstrap)])
    order = sorted(range(len(players)), key=lambda i: -point[i] if np.isfinite(point[i]) else np.inf)
    out = {}
    for rank, i in enumerate(order, 1):
        column = samples[:, i][np.isfinite(samples[:, i])]
        low, high = np.percentile(column, [2.5, 97.5]) if len(column) else (np.nan, np.nan)
        out[players[i]] = {"rank": rank, "strength": float(point[i]), "low": float(low), "high": float(high)}
    return out


def agreement(study: Study, votes: list[dict]) -> dict:
    """Krippendorff's alpha (nominal: a / b / tie) over pairs that several raters rated; Fleiss' kappa if even."""
    by_pair: dict[str, list[str]] = defaultdict(list)
    for vote in votes:
        pair = study.pairs.get(vote["pair_id"])
        if pair is not None and pair["kind"] != "attention":
            by_pair[vote["pair_id"]].append(vote["winner"])
    units = [values for values in by_pair.values() if len(values) >= 2]
    raters = len({vote["rater"] for vote in votes})
    alpha = krippendorff_alpha_nominal(units) if units else float("nan")
    note = None if np.isfinite(alpha) else ("needs >= 2 raters" if raters < 2 else
                                            "needs a pair rated by >= 2 raters" if not units else
                                            "undefined: every rating is the same")
    result = {"pairs": len(units), "ratings": sum(map(len, units)), "raters": raters,
              "krippendorff_alpha": alpha, "alpha_note": note, "fleiss_kappa": None}
    if units and len({len(u) for u in units}) == 1:
        categories = ["a", "b", "tie"]
        result["fleiss_kappa"] = fleiss_kappa([[u.count(c) for c in categories] for u in units])
    return result


def analyse(study_dir: str | Path, options: ResultOptions = ResultOptions()) -> dict:
    study = Study(study_dir)
    all_votes = Store.open(study_dir).votes()
    attention = attention_report(study, all_votes, options.attention_threshold)
    excluded = [] if options.keep_failed else sorted(r for r, row in attention.items() if row["status"] == "failed")
    votes = [v for v in all_votes if v["rater"] not in excluded]
    per_condition = {}
    for condition in study.conditions:
        wins = ties = losses = 0
        for vote in votes:
            pair = study.pairs.get(vote["pair_id"])
            if pair and pair["kind"] == "vs-original" and pair["a"] == condition:
                wins += vote["winner"] == "a"
                ties += vote["winner"] == "tie"
                losses += vote["winner"] == "b"
        n = wins + ties + losses
        low, high = wilson_interval(wins + ties, n)
        per_condition[condition] = {"n": n, "wins": wins, "ties": ties, "losses": losses,
                                    "win_or_tie": (wins + ties) / n if n else float("nan"),
                                    "ci_low": low, "ci_high": high}
    players = [ORIGINAL] + study.conditions
    return {"study": str(Path(study_dir)), "kind": study.kind, "pairs": len(study.pairs),
            "votes": len(all_votes), "votes_used": len(votes), "raters": len(attention),
            "options": asdict(options),
            "attention": attention, "excluded_raters": excluded, "vs_original": per_condition,
            "bradley_terry": bradley_terry_ranking(players, _comparisons(study, votes, players), options),
            "agreement": agreement(study, votes)}


def _cell(value):
    """A CSV cell a spreadsheet will not run: text starting = + - @ (or tab / CR) gets a leading apostrophe.
    Numbers stay numbers (a negative strength is a number, not a formula)."""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value
    return value


def _csv(result: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["condition", "n", "wins", "ties", "losses", "win_or_tie", "wilson_low", "wilson_high",
                     "bt_rank", "bt_strength_vs_original", "bt_low", "bt_high"])
    for name, bt in result["bradley_terry"].items():
        row = result["vs_original"].get(name, {})
        writer.writerow([_cell(name)] + [row.get(k, "") for k in ("n", "wins", "ties", "losses", "win_or_tie",
                                                                    "ci_low", "ci_high")]
                        + [bt["rank"], bt["strength"], bt["low"], bt["high"]])
    return buffer.getvalue()


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["vs_original"]
    names = list(rows)
    rates = np.array([rows[n]["win_or_tie"] for n in names], dtype=float)
    errors = np.array([[rows[n]["win_or_tie"] - rows[n]["ci_low"], rows[n]["ci_high"] - rows[n]["win_or_tie"]]
                       for n in names], dtype=float).T.clip(min=0)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(names) + 1.5), 3.6))
    ax.bar(range(len(names)), np.nan_to_num(rates), yerr=np.nan_to_num(errors), capsize=4, color="#2f5bd3")
    for i, n in enumerate(names):
        ax.text(i, 0.02, f"n={rows[n]['n']}", ha="center", va="bottom", color="white", fontsize=8)
    # names are free text (`--name`): a "$" would start matplotlib's mathtext, and "$^$" is a parse error
    ax.set_xticks(range(len(names)), [name.replace("$", r"\$") for name in names], rotation=20, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("judged as good as or better\nthan the original")
    ax.set_title("Win-or-tie rate vs the original (Wilson 95%)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _finite(obj):
    """nan / inf -> None, so results.json is strict JSON."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_results(result: dict, study_dir: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """results.json, results.csv (one row per version), votes.csv (every vote decoded) and results.png."""
    out_dir = ensure_writable_dir(out_dir)
    paths = {"json": out_dir / RESULTS, "csv": out_dir / "results.csv", "votes": out_dir / "votes.csv",
             "plot": out_dir / "results.png"}
    write_text(paths["json"], json.dumps(_finite(result), indent=2, allow_nan=False) + "\n")
    write_text(paths["csv"], _csv(result))
    write_votes(study_dir, paths["votes"])
    _plot(result, paths["plot"])
    return paths


def write_votes(study_dir: str | Path, path: Path) -> None:
    """Every vote, decoded: which versions the pair compared and which one the rater preferred."""
    study = Study(study_dir)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["vote", "rater", "pair", "kind", "item", "a", "b", "left", "answer", "preferred", "time"])
    for vote in Store.open(study_dir).votes():
        pair = study.pairs.get(vote["pair_id"], {})
        preferred = "tie" if vote["winner"] == "tie" else pair.get(vote["winner"], "?")
        writer.writerow([_cell(value) for value in (
            vote["id"], vote["rater"], vote["pair_id"], pair.get("kind"), pair.get("item"), pair.get("a"),
            pair.get("b"), pair.get(vote["left_version"]), vote["answer"], preferred, vote["created"])])
    write_text(path, buffer.getvalue())


def format_table(result: dict) -> str:
    lines = [f"{result['votes_used']} of {result['votes']} votes used, {result['raters']} raters, "
             f"{result['pairs']} pairs ({result['kind']})", "",
             f"{'condition':<28} {'n':>5} {registry.label('win_or_tie'):>10}  {'Wilson 95%':<15} {'BT rank':>7} "
             f"{registry.label('bt_strength'):>14}  95% bootstrap"]
    for name, bt in result["bradley_terry"].items():
        row = result["vs_original"].get(name)
        head = (f"{name:<28} {row['n']:>5} {row['win_or_tie']:>10.3f}  [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
                if row else f"{name:<28} {'':>5} {'':>10}  {'':<15}")
        lines.append(f"{head:<63} {bt['rank']:>7} {bt['strength']:>14.3f}  [{bt['low']:.3f}, {bt['high']:.3f}]")
    agree = result["agreement"]
    alpha = agree["alpha_note"] or f"{agree['krippendorff_alpha']:.3f}"
    lines += ["", f"agreement on {agree['pairs']} pairs rated by several raters: "
                  f"{registry.label('krippendorff_alpha')} {alpha}"
                  + (f", {registry.label('fleiss_kappa')} {agree['fleiss_kappa']:.3f}"
                     if agree["fleiss_kappa"] is not None and np.isfinite(agree["fleiss_kappa"]) else "")]
    failed = [r for r, row in result["attention"].items() if row["status"] == "failed"]
    if failed:
        verb = "excluded" if result["excluded_raters"] else "kept (--keep-failed)"
        lines.append("failed attention checks, " + verb + ": " + ", ".join(
            f"{r} ({result['attention'][r]['passed']}/{result['attention'][r]['checks']})" for r in sorted(failed)))
    else:
        lines.append("no rater failed the attention checks")
    return "\n".join(lines)
