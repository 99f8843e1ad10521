"""`hyperfit rate ...`: build a blinded study, invite raters, serve the rating page, compute the results."""

from __future__ import annotations

from pathlib import Path

import click

from hyperfit_core.errors import HyperfitError
from hyperfit_rate.server import DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUT_S, RatingServer, ServerLimits
from hyperfit_rate.store import Store
from hyperfit_rate.study import BuildOptions, Study, build_study


class _PairsPerCondition(click.ParamType):
    name = "N|all"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        if str(value).lower() == "all":
            return None
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor 'all'", param, ctx)


@click.group()
def rate():
    """Blind pairwise human rating of completions (the paper's human preference)."""


@rate.command()
@click.argument("study", type=click.Path())
@click.argument("more_runs", nargs=-1, type=click.Path(), metavar="[RUN]...")
@click.option("--runs", multiple=True, type=click.Path(), metavar="RUN",
              help="`vision complete` / `text generate` run dirs (every completion file in them is a condition).")
@click.option("--seed", type=int, default=0, show_default=True, help="Items sampled, each rater's order and sides.")
@click.option("--pairs-per-condition", type=_PairsPerCondition(), default="all", show_default=True,
              help="Items compared per condition (the same items for every condition).")
@click.option("--condition-vs-condition", is_flag=True, help="Also pair every two conditions on the same items.")
@click.option("--attention-share", type=float, default=0.1, show_default=True,
              help="Share of all pairs that are attention checks (the original vs a visibly broken copy).")
def build(study, more_runs, runs, seed, pairs_per_condition, condition_vs_condition, attention_share):
    """Make a new study folder STUDY from completion or generation runs.

    \b
    Example: hyperfit rate build study --runs runs/base-greedy runs/hyperfit-greedy
    """
    options = BuildOptions(seed=seed, pairs_per_condition=pairs_per_condition,
                           condition_vs_condition=condition_vs_condition, attention_share=attention_share)
    made = build_study(study, list(runs) + list(more_runs), options)
    kinds = {}
    for pair in made["pairs"]:
        kinds[pair["kind"]] = kinds.get(pair["kind"], 0) + 1
    click.echo(f"{len(made['pairs'])} pairs ({', '.join(f'{n} {k}' for k, n in kinds.items())}) of "
               f"{made['kind']} over {len(made['conditions'])} conditions: {', '.join(made['conditions'])}", err=True)
    if made["kind"] == "text":
        texts = made["texts"]
        held = texts["with_special_tokens_not_shown"]
        counts = [(n, f"{name} texts") for name, n in held["versions"].items()] + [(held["context"], "contexts")]
        click.echo(f"texts of {texts['tokens']} tokens each; special tokens, left out of what raters see, were in "
                   + (", ".join(f"{n} of {texts['items']} {what}" for n, what in counts if n) or "none"), err=True)
    click.echo(f"next: hyperfit rate serve {study}   (or: hyperfit rate invite {study} --raters N)", err=True)
    click.echo(str(Path(study)))


@rate.command()
@click.argument("study", type=click.Path())
@click.option("--raters", type=int, required=True, help="How many invite links to make.")
@click.option("--url", "base_url", default="http://127.0.0.1:8000", show_default=True,
              help="The address raters will reach the server at (as given to `serve`).")
@click.option("--prefix", default="rater", show_default=True, help="Raters are named PREFIX-01, PREFIX-02, ...")
def invite(study, raters, base_url, prefix):
    """Make per-rater invite links (needed to serve on any interface but loopback); prints NAME URL lines."""
    Study(study)
    store = Store.open(study)
    if raters < 1:
        raise HyperfitError("--raters must be at least 1")
    taken = {r.name for r in store.raters()}
    number = 0
    for _ in range(raters):
        number += 1
        while f"{prefix}-{number:02d}" in taken:
            number += 1
        try:
            rater = store.add_rater(f"{prefix}-{number:02d}", invited=True)
        except ValueError as exc:
            raise HyperfitError(f"--prefix: {exc}") from None
        click.echo(f"{rater.name}\t{base_url.rstrip('/')}/r/{rater.token}")


@rate.command()
@click.argument("study", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on; anything but loopback admits invited raters only.")
@click.option("--port", type=int, default=8000, show_default=True, help="0 picks a free port.")
@click.option("--timeout", "timeout_s", type=click.IntRange(1), default=DEFAULT_TIMEOUT_S, show_default=True,
              help="Seconds a connection may send nothing (a half-sent request too) before it is closed.")
@click.option("--max-connections", type=click.IntRange(1), default=DEFAULT_MAX_CONNECTIONS, show_default=True,
              help="Connections open at once; more wait until one closes.")
def serve(study, host, port, timeout_s, max_connections):
    """Serve the rating page for STUDY (Ctrl-C stops; every vote is already on disk)."""
    from hyperfit_rate.app import create_app, is_loopback

    Study(study)
    loopback = is_loopback(host)
    if not loopback and not any(r.invited for r in Store.open(study).raters()):
        raise HyperfitError(f"serving on {host} (not a loopback address) admits invited raters only, and there are "
                            f"none: run `hyperfit rate invite {study} --raters N --url http://{host}:{port}` first")
    app = create_app(study, invite_only=not loopback)
    try:
        server = RatingServer(app, host, port, ServerLimits(timeout_s, max_connections))
    except OSError as exc:
        raise HyperfitError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    if server.connections < max_connections:
        click.echo(f"warning: the open-files limit allows {server.connections} connections at once, not "
                   f"{max_connections} (raise it with `ulimit -n`)", err=True)
    where = f"http://{f'[{host}]' if ':' in host else host}:{server.port}/"
    click.echo(f"serving {study} at {where}" + (" (pick a name there, or use an invite link)" if loopback else
                                                " (invite links only)") + "; Ctrl-C stops", err=True)
    server.run()


@rate.command()
@click.argument("study", type=click.Path())
@click.option("--keep-failed", is_flag=True, help="Keep raters who failed the attention checks.")
@click.option("--attention-threshold", type=click.FloatRange(0, 1), default=0.8, show_default=True,
              help="Share of attention checks a rater must pass.")
@click.option("--bootstrap", type=click.IntRange(0), default=1000, show_default=True,
              help="Bootstrap resamples of the votes for the Bradley-Terry intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--out", default=None, type=click.Path(), help="Folder for the exports [default: STUDY/results].")
def results(study, keep_failed, attention_threshold, bootstrap, seed, out):
    """Win-or-tie rates vs the original (Wilson 95%), Bradley-Terry ranking, agreement; CSV/JSON/PNG exports."""
    from hyperfit_rate.results import ResultOptions, analyse, format_table, write_results

    options = ResultOptions(keep_failed=keep_failed, attention_threshold=attention_threshold,
                            bootstrap=bootstrap, seed=seed)
    result = analyse(study, options)
    paths = write_results(result, study, out or Path(study) / "results")
    click.echo(format_table(result))
    click.echo("\n" + "\n".join(f"{kind}: {path}" for kind, path in paths.items()))
