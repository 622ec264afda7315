"""Times and durations as people type them.

Durations: ``90``, ``90s``, ``5m``, ``2h``, ``1d``, ``1h30m``, ``1.5s``.
Times (always resolved to UTC):

* ISO: ``2026-11-28T03:14``, ``2026-11-28 03:14:05``, with an optional offset
  (``Z``, ``+02:00``) or `` UTC`` as procsnap prints times; without one the
  time is UTC, like the recording;
* ``HH:MM[:SS]``: that time on the day of the reference (the recording's last
  snapshot);
* relative: ``-10m`` is ten minutes before the reference, ``+30s`` after the
  start; ``start`` and ``end`` name the recording's first and last snapshot;
  ``now`` is the current time.

A time covers everything its last digit names (:func:`parse_span`): ``03:14:05``
is the whole second (a snapshot taken at 03:14:05.62 is "at 03:14:05", as
procsnap prints it), ``03:14`` the whole minute, ``2026-11-28`` the whole day.
Relative times, ``start``, ``end`` and ``now`` are instants.
"""

from __future__ import annotations

import datetime as dt
import re

from analyze.errors import UsageError
from recorder import units

UTC = dt.timezone.utc


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in TEXT, in the grammar of :mod:`recorder.units`; a UsageError when it does not parse."""
    try:
        return units.parse_duration(text, what)
    except units.UnitError as e:
        raise UsageError(str(e)) from None


def parse_time(text: str, start: dt.datetime | None = None, end: dt.datetime | None = None) -> dt.datetime:
    """Resolve a time as typed; start/end are the recording's first and last snapshot."""
    return parse_span(text, start, end)[0]


def parse_span(text: str, start: dt.datetime | None = None,
               end: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The first and last microsecond a time as typed covers (the same instant for an exact one)."""
    try:
        first, unit = _parse(text, start, end)
    except OverflowError:
        raise UsageError(f"bad time {text!r}: out of range") from None
    try:
        return first, first + unit - dt.timedelta(microseconds=1) if unit else first
    except OverflowError:  # the last day, hour, ... of year 9999
        return first, dt.datetime.max.replace(tzinfo=UTC)


def check_window(first: dt.datetime | None, last: dt.datetime | None, names: str = "--from is after --to") -> None:
    """The one error (exit 2) for a window whose start is after its end, in every command."""
    if first is not None and last is not None and first > last:
        raise UsageError(f"{names} ({first:%Y-%m-%d %H:%M:%S} UTC > {last:%Y-%m-%d %H:%M:%S} UTC)")


_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}(?P<m>:\d{2}(?P<s>:\d{2}(?:[.,](?P<f>\d+))?)?)?)?"
                  r"(?:Z|[+-]\d{2}(?::?\d{2})?)?", re.IGNORECASE)


def _unit(has_minutes: bool, has_seconds: bool, fraction: str | None, day: bool = False) -> dt.timedelta:
    if fraction:
        return dt.timedelta(microseconds=10 ** max(6 - len(fraction), 0))
    if has_seconds:
        return dt.timedelta(seconds=1)
    if has_minutes:
        return dt.timedelta(minutes=1)
    return dt.timedelta(days=1) if day else dt.timedelta(hours=1)


_UTC_SUFFIX = re.compile(r"(?P<clock>(?:\d{4}-\d{2}-\d{2}[T ])?\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?|\d{4}-\d{2}-\d{2})"
                         r"\s+UTC", re.IGNORECASE)


def _parse(text: str, start: dt.datetime | None, end: dt.datetime | None) -> tuple[dt.datetime, dt.timedelta | None]:
    t = text.strip()
    # "2026-11-28 03:14:05 UTC", as procsnap prints times, pasted back: the same clock time in UTC
    # (only after a date or clock time that carries no offset of its own).
    suffix = _UTC_SUFFIX.fullmatch(t)
    if suffix:
        t = suffix.group("clock")
    low = t.lower()
    ref = end or dt.datetime.now(UTC)
    if low == "now":
        return dt.datetime.now(UTC), None
    if low == "end":
        return ref, None
    if low == "start":
        return start or ref, None
    if t[:1] in "+-" and t[1:2].isdigit():
        d = parse_duration(t[1:], "relative time")
        if t[0] == "-":
            return ref - dt.timedelta(seconds=d), None
        return (start or ref) + dt.timedelta(seconds=d), None
    m = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?", t)
    if m:
        h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        frac = m.group(4)
        if h > 23 or mi > 59 or s > 59:
            raise UsageError(f"bad time {text!r}")
        day = ref.astimezone(UTC).date()
        v = dt.datetime(day.year, day.month, day.day, h, mi, s, int(float(frac or 0) * 1e6), tzinfo=UTC)
        return v, _unit(True, m.group(3) is not None, frac[1:] if frac else None)
    try:
        v = dt.datetime.fromisoformat(t.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"bad time {text!r}: use an ISO time (2026-11-28T03:14), HH:MM[:SS], "
            "a relative time (-10m, +30s), start, end or now") from None
    if v.tzinfo is None:
        v = v.replace(tzinfo=UTC)
    iso = _ISO.fullmatch(t)
    unit = _unit(bool(iso.group("m")), bool(iso.group("s")), iso.group("f"), day=len(t) == 10) if iso else None
    return v.astimezone(UTC), unit
