"""Every option of every command is documented (its help says what it is, with unit and default)."""

import click

from hyperfit_core.cli import root


def _commands(group: click.Group, ctx: click.Context, prefix=()):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _commands(command, click.Context(command, parent=ctx), (*prefix, name))
        else:
            yield " ".join((*prefix, name)), command


def test_every_option_of_every_command_has_help():
    ctx = click.Context(root)
    missing = [f"{path} {param.opts[0]}" for path, command in _commands(root, ctx)
               for param in command.params if isinstance(param, click.Option) and not (param.help or "").strip()]
    assert missing == []
