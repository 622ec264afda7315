"""top's order: the sort keys (``cpu``, ``mem``, ``io``, ``fds``, ``time``, ``pid``, ``threads``, ``start``,
``wait``; ``-KEY`` for low to high) and the tasks sorted by one."""

from __future__ import annotations

from analyze.commands.top.loading import Task
from analyze.errors import UsageError


SORT_KEYS = ("cpu", "mem", "io", "fds", "time", "pid", "threads", "start", "wait")


def parse_sort(key: str) -> tuple[str, bool]:
    """``cpu`` → ("cpu", high to low); ``-cpu`` → low to high; ``+cpu`` as top's -o +FIELD."""
    k = (key or "").strip().lower()
    descending = True
    if k[:1] in ("+", "-"):
        descending = k[0] == "+"
        k = k[1:]
    if k not in SORT_KEYS:
        raise UsageError(f"bad sort key {key!r}: use {', '.join(SORT_KEYS)} (-KEY for low to high)")
    return k, descending


_SORT_VALUE = {
    "cpu": lambda t: t.cpu_pct,
    "mem": lambda t: t.res_kib,
    "io": lambda t: t.io_bps,
    "fds": lambda t: t.fds,
    "time": lambda t: t.centis,
    "pid": lambda t: t.pid,
    "threads": lambda t: t.threads,
    "start": lambda t: t.start,
    "wait": lambda t: t.wait_pct,
}


def ordered(tasks: list[Task], key: str, descending: bool = True) -> list[Task]:
    """Sorted by KEY; ties keep pid order, and unknown values (None) come last either way."""
    value = _SORT_VALUE[key]
    known = [t for t in tasks if value(t) is not None]
    unknown = [t for t in tasks if value(t) is None]
    # sorted(reverse=True) keeps ties in their order too: pid order, as top's stable sort
    known = sorted(sorted(known, key=lambda t: t.pid), key=value, reverse=descending)
    return known + sorted(unknown, key=lambda t: t.pid)
