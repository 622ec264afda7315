"""The `procsnap` command's entry point.

`procsnap lsof`, `ps` and `snapshot` run without importing the command framework
(:mod:`analyze.fast`); every other command, and their --help, go through :mod:`analyze.cli`.
"""

from __future__ import annotations

import sys

from analyze import fast


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    with fast.guarded(args):
        if fast.wanted(args):
            return fast.run(args, help_text=_help)
        try:
            from analyze.cli import main as full
        except KeyboardInterrupt:  # Ctrl-C while the framework loads: no traceback either
            from analyze.errors import report
            return report(KeyboardInterrupt())
        return full(args)


def _help(name: str) -> str:
    from analyze.cli import help_of
    return help_of(name)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
