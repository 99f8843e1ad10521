"""The root `hyperfit` command. Modality groups arrive through the `hyperfit.commands` entry point group,
so this package stays free of any adapter import."""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points

import click

from hyperfit_core.errors import HyperfitError


class _RootGroup(click.Group):
    def _plugins(self) -> dict:
        return {ep.name: ep for ep in entry_points(group="hyperfit.commands")}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self._plugins()))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and name in self._plugins():
            command = self._plugins()[name].load()
        return command


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
