"""The two kinds of failure a command reports: one line, never a traceback."""


class ProcsnapError(Exception):
    """Something went wrong with valid input (exit 1)."""

    exit_code = 1


class UsageError(ProcsnapError):
    """The command line itself is wrong (exit 2)."""

    exit_code = 2


def live_only(at, hosts, command: str) -> None:
    """--at and --host mean a recording: without --rec they are usage errors."""
    if at is not None or hosts:
        raise UsageError(f"{'--at' if at is not None else '--host'} goes with --rec "
                         f"(without --rec procsnap {command} reads the live host, now)")
