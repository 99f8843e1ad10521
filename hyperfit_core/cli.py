"""The root `hyperfit` command. Modalities arrive through the `hyperfit.modalities` entry point group
(hyperfit_core.adapters), other command groups (`rate`) through `hyperfit.commands`, so this package stays free
of any adapter import. One that fails to load is left out with a one-line warning; the others still run."""

from __future__ import annotations

import os
import sys

import click

from hyperfit_core.adapters import COMMANDS, adapters, command_entries, load_commands
from hyperfit_core.errors import HyperfitError, warn


class _RootGroup(click.Group):
    """Subcommands: each modality's group, then the `hyperfit.commands` groups; loaded when named."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(adapters()) | set(command_entries()))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and name in adapters():
            command = load_commands(adapters()[name])  # a group that fails to import: one `error:` line
        elif command is None and name in command_entries():
            command = _load_group(command_entries()[name])
        return command

    def format_commands(self, ctx, formatter):
        """`hyperfit --help` lists what loads; one that does not is one warning line, not a traceback."""
        commands = []
        for name in self.list_commands(ctx):
            try:
                command = self.get_command(ctx, name)
            except HyperfitError as exc:
                warn(f"left out {name!r}: {exc}")
                continue
            if command is not None and not command.hidden:
                commands.append((name, command))
        if commands:  # as click.Group.format_commands lays them out
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in commands])


def _load_group(entry):
    try:
        return entry.load()
    except Exception as exc:
        raise HyperfitError(f"the {COMMANDS} entry point {entry.name!r} ({entry.value}) does not load: "
                            f"{type(exc).__name__}: {exc}") from None


@click.group(cls=_RootGroup)
@click.version_option(package_name="hyperfit")
def root():
    """Hyperfitting (Carlsson et al., arXiv 2412.04318): fine-tune to near-zero loss, then decode greedily."""


def _quiet_library_progress_bars() -> None:
    """Loading bars of transformers / datasets would bury a one-line error; our own progress bars stay."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()


def main(argv=None) -> None:
    _quiet_library_progress_bars()
    try:
        root.main(args=argv, prog_name="hyperfit", standalone_mode=False)
    except HyperfitError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # bad option values: one line, like every other input error
        command = exc.ctx.command_path if exc.ctx is not None else "hyperfit"
        click.echo(f"error: {exc.format_message()} (see {command} --help)", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
