import datetime as dt

import pytest

from analyze.errors import UsageError
from analyze.timespec import parse_duration, parse_time

UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 28, 3, 0, 0, tzinfo=UTC)
END = dt.datetime(2026, 11, 28, 4, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("text,secs", [("90", 90), ("1.5", 1.5), ("30s", 30), ("5m", 300), ("2h", 7200),
                                       ("1d", 86400), ("1h30m", 5400), ("1m30s", 90), (" 2H ", 7200)])
def test_durations(text, secs):
    assert parse_duration(text) == secs


@pytest.mark.parametrize("text", ["", "abc", "5x", "m5", "5m3", "nan", "inf", "1h 30m"])
def test_bad_durations(text):
    with pytest.raises(UsageError):
        parse_duration(text)


@pytest.mark.parametrize("text,expect", [
    ("03:14", dt.datetime(2026, 11, 28, 3, 14, tzinfo=UTC)),
    ("3:14:05", dt.datetime(2026, 11, 28, 3, 14, 5, tzinfo=UTC)),
    ("-10m", END - dt.timedelta(minutes=10)),
    ("+30s", START + dt.timedelta(seconds=30)),
    ("start", START),
    ("end", END),
    ("2026-11-27T23:00", dt.datetime(2026, 11, 27, 23, 0, tzinfo=UTC)),
    ("2026-11-28 05:00:00+02:00", dt.datetime(2026, 11, 28, 3, 0, tzinfo=UTC)),
    ("2026-11-28T03:00:00Z", START),
])
def test_times(text, expect):
    assert parse_time(text, START, END) == expect


@pytest.mark.parametrize("text", ["25:00", "12:61", "yesterday", "2026-13-01", "-", "-x"])
def test_bad_times(text):
    with pytest.raises(UsageError):
        parse_time(text, START, END)
