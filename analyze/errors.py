"""The two kinds of failure a command reports: one line, never a traceback."""


class ProcsnapError(Exception):
    """Something went wrong with valid input (exit 1)."""

    exit_code = 1


class UsageError(ProcsnapError):
    """The command line itself is wrong (exit 2)."""

    exit_code = 2
