"""The two kinds of failure a command reports: one line, never a traceback."""


class ProcsnapError(Exception):
    """Something went wrong with valid input (exit 1)."""

    exit_code = 1


class UsageError(ProcsnapError):
    """The command line itself is wrong (exit 2)."""

    exit_code = 2


class PartialError(ProcsnapError):
    """Nothing to answer with because the recorded rows it needs are unreadable (exit 3, as a
    partial answer: see analyze.data.damage)."""

    exit_code = 3


def live_only(at, hosts, command: str) -> None:
    """--at and --host mean a recording: without --rec they are usage errors."""
    if at is not None or hosts:
        raise UsageError(f"{'--at' if at is not None else '--host'} goes with --rec "
                         f"(without --rec procsnap {command} reads the live host, now)")


def duckdb_error_line(e: BaseException) -> str | None:
    """One line for a DuckDB error that escaped a command, or None for any other exception.
    The usual cause: a live recorder's retention removed a file the command had just listed."""
    if type(e).__module__.split(".")[0].lstrip("_") != "duckdb":
        return None
    msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if files_removed(msg):
        msg += " (a live recorder removed old files meanwhile: run the command again)"
    return msg


def files_removed(msg: str) -> bool:
    """Whether a DuckDB error says files it had listed are gone (a live recorder's retention or
    compaction removed them)."""
    return "No files found" in msg or "No such file" in msg


def report(e: BaseException) -> int | None:
    """Print the one line for an exception a command let escape and return its exit status;
    None for an exception that is a bug (the caller re-raises it: a traceback is then wanted)."""
    import sys

    from analyze.data.interrupt import INTERRUPTED
    if isinstance(e, KeyboardInterrupt) or INTERRUPTED.is_set():
        # After Ctrl-C, whatever the interrupted engine raised (DuckDB's InterruptException, the
        # RuntimeError its Python module makes of a KeyboardInterrupt, an error wrapping either).
        line, code = "interrupted", 130
    elif isinstance(e, ProcsnapError):
        line, code = str(e), e.exit_code
    elif isinstance(e, OSError):
        line, code = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""), 1
    else:
        line, code = duckdb_error_line(e), 1
        if line is None:
            return None
    from analyze.output import escape  # a message may name a file or host of a recording
    print(f"procsnap: {escape(line)}", file=sys.stderr)
    return code
