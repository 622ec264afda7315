"""The commands that run without the command framework: `procsnap lsof`, `ps` and `snapshot`.

They are what people type during an incident, many times, on a busy host, and what cron runs:
they parse their own options, so they start without typer (and through it pydantic and rich,
which cost more than a live `lsof -p PID` itself). Their --help goes through the framework.
Both ways in (:mod:`analyze.entry`, the installed command, and ``python -m analyze.cli``) use
this module; it imports neither of them.
"""

from __future__ import annotations

import contextlib

FAST = ("lsof", "ps", "snapshot")
HELP = ("--help", "-h", "-?", "--usage")


def wanted(args: list[str]) -> bool:
    """Whether ARGS name a command run here (and ask for no help)."""
    return bool(args) and args[0] in FAST and not any(a in HELP for a in args[1:])


def guarded(args: list[str]):
    """What a recording or the host supplies reaches the terminal escaped
    (:func:`analyze.output.terminal_guard`), but for `record`, whose progress line redraws
    itself with a carriage return."""
    if args[:1] == ["record"]:
        return contextlib.nullcontext()
    from analyze.output import terminal_guard
    return terminal_guard()


def run(args: list[str], help_text) -> int:
    """Run the command ARGS[0] with ARGS[1:]; HELP_TEXT(name) is its --help text, for a help
    flag spelled another way."""
    name, rest = args[0], args[1:]
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
            return retrying(lambda: mod.run(rest, help_text=lambda: help_text(name)))
    except (Exception, KeyboardInterrupt) as e:  # one line for what a user can meet, a traceback for bugs
        from analyze.errors import report
        code = report(e)
        if code is None:
            raise
        return code
