"""The `procsnap` command's entry point.

`procsnap lsof` and `procsnap ps` are what people type during an incident, many times, on a busy
host: they must start as fast as the tools they stand in for; `procsnap snapshot` runs from cron
and scripts, where its start is part of its cost. They parse their own options, so
they are run here without importing the command framework (typer, and through it pydantic and
rich, cost more than a live `lsof -p PID` itself); every other command, and their --help, go
through :mod:`analyze.cli`.
"""

from __future__ import annotations

import sys

FAST = ("lsof", "ps", "snapshot")
HELP = ("--help", "-h", "-?", "--usage")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["record"]:  # its progress line redraws itself with a carriage return
        return _run(args)
    from analyze.output import terminal_guard
    with terminal_guard():  # what a recording or the host supplies reaches the terminal escaped
        return _run(args)


def _run(args: list[str]) -> int:
    if args and args[0] in FAST and not any(a in HELP for a in args[1:]):
        return _fast(args[0], args[1:])
    try:
        from analyze.cli import main as full
    except KeyboardInterrupt:  # Ctrl-C while the framework loads: no traceback either
        from analyze.errors import report
        return report(KeyboardInterrupt())
    return full(args)


def _fast(name: str, args: list[str]) -> int:
    try:
        if name == "lsof":
            from analyze.commands import lsof as mod
        elif name == "snapshot":
            from analyze.commands import snapshot as mod
        else:
            from analyze.commands import ps as mod
        from analyze.data.damage import retrying
        from analyze.data.interrupt import stoppable
        with stoppable():
            return retrying(lambda: mod.run(args, help_text=lambda: _help(name)))
    except (Exception, KeyboardInterrupt) as e:  # one line for what a user can meet, a traceback for bugs
        from analyze.errors import report
        code = report(e)
        if code is None:
            raise
        return code

def _help(name: str) -> str:
    """The command's help as `procsnap NAME --help` prints it (for a help flag spelled another way)."""
    import click
    import typer

    from analyze.cli import app
    group = typer.main.get_command(app)
    with click.Context(group, info_name="procsnap") as gctx:
        cmd = group.get_command(gctx, name)
        with click.Context(cmd, info_name=name, parent=gctx) as ctx:
            return cmd.get_help(ctx)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
