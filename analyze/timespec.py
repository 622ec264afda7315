"""Times and durations as people type them.

Durations: ``90``, ``90s``, ``5m``, ``2h``, ``1d``, ``1h30m``, ``1.5s``.
Times (always resolved to UTC):

* ISO: ``2026-11-28T03:14``, ``2026-11-28 03:14:05``, with an optional offset
  (``Z``, ``+02:00``); without one the time is UTC, like the recording;
* ``HH:MM[:SS]``: that time on the day of the reference (the recording's last
  snapshot);
* relative: ``-10m`` is ten minutes before the reference, ``+30s`` after the
  start; ``start`` and ``end`` name the recording's first and last snapshot;
  ``now`` is the current time.
"""

from __future__ import annotations

import datetime as dt
import re

from .errors import UsageError

UTC = dt.timezone.utc
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DUR = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str, what: str = "duration") -> float:
    t = text.strip().lower()
    try:
        v = float(t)
    except ValueError:
        pos = 0
        v = 0.0
        for m in _DUR.finditer(t):
            if m.start() != pos:
                break
            v += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos != len(t) or not t:
            raise UsageError(f"bad {what} {text!r}: use seconds or a duration like 30s, 5m, 2h, 1h30m") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise UsageError(f"bad {what} {text!r}")
    return v


def parse_time(text: str, start: dt.datetime | None = None, end: dt.datetime | None = None) -> dt.datetime:
    """Resolve a time as typed; start/end are the recording's first and last snapshot."""
    t = text.strip()
    low = t.lower()
    ref = end or dt.datetime.now(UTC)
    if low == "now":
        return dt.datetime.now(UTC)
    if low == "end":
        return ref
    if low == "start":
        return start or ref
    if t[:1] in "+-" and t[1:2].isdigit():
        d = parse_duration(t[1:], "relative time")
        if t[0] == "-":
            return ref - dt.timedelta(seconds=d)
        return (start or ref) + dt.timedelta(seconds=d)
    m = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?", t)
    if m:
        h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        frac = float(m.group(4) or 0)
        if h > 23 or mi > 59 or s > 59:
            raise UsageError(f"bad time {text!r}")
        day = ref.astimezone(UTC).date()
        return dt.datetime(day.year, day.month, day.day, h, mi, s, int(frac * 1e6), tzinfo=UTC)
    try:
        v = dt.datetime.fromisoformat(t.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"bad time {text!r}: use an ISO time (2026-11-28T03:14), HH:MM[:SS], "
            "a relative time (-10m, +30s), start, end or now") from None
    if v.tzinfo is None:
        v = v.replace(tzinfo=UTC)
    return v.astimezone(UTC)
