import datetime as dt

import pytest

from analyze.errors import UsageError
from analyze.data.timespec import parse_duration, parse_span, parse_time

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


US = dt.timedelta(microseconds=1)


@pytest.mark.parametrize("text,first,last", [
    ("03:14", dt.datetime(2026, 11, 28, 3, 14, tzinfo=UTC), dt.datetime(2026, 11, 28, 3, 15, tzinfo=UTC) - US),
    ("03:14:05", dt.datetime(2026, 11, 28, 3, 14, 5, tzinfo=UTC), dt.datetime(2026, 11, 28, 3, 14, 6, tzinfo=UTC) - US),
    ("03:14:05.6", dt.datetime(2026, 11, 28, 3, 14, 5, 600000, tzinfo=UTC),
     dt.datetime(2026, 11, 28, 3, 14, 5, 700000, tzinfo=UTC) - US),
    ("2026-11-27", dt.datetime(2026, 11, 27, tzinfo=UTC), dt.datetime(2026, 11, 28, tzinfo=UTC) - US),
    ("2026-11-28T03", START, START + dt.timedelta(hours=1) - US),
    ("2026-11-28 05:00:00+02:00", START, START + dt.timedelta(seconds=1) - US),
    ("2026-11-28T03:00:00.123456Z", START + dt.timedelta(microseconds=123456), START + dt.timedelta(microseconds=123456)),
    ("-10m", END - dt.timedelta(minutes=10), END - dt.timedelta(minutes=10)),
    ("start", START, START),
    ("end", END, END),
    ("9999-12-31", dt.datetime(9999, 12, 31, tzinfo=UTC), dt.datetime.max.replace(tzinfo=UTC)),
])
def test_a_time_covers_what_its_last_digit_names(text, first, last):
    assert parse_span(text, START, END) == (first, last)
    assert parse_time(text, START, END) == first


@pytest.mark.parametrize("text,first", [
    ("2026-11-28 03:14:05 UTC", dt.datetime(2026, 11, 28, 3, 14, 5, tzinfo=UTC)),
    ("03:14:05 utc", dt.datetime(2026, 11, 28, 3, 14, 5, tzinfo=UTC)),
    ("2026-11-28 03:14 UTC", dt.datetime(2026, 11, 28, 3, 14, tzinfo=UTC)),
    ("2026-11-27 UTC", dt.datetime(2026, 11, 27, tzinfo=UTC)),
    ("2026-11-28T03:14:05.6 UTC", dt.datetime(2026, 11, 28, 3, 14, 5, 600000, tzinfo=UTC)),
])
def test_a_time_as_procsnap_prints_it_is_accepted(text, first):
    """Headers and notes print "2026-11-28 03:14:05 UTC": pasted back, it names that whole second
    (minute), as without the suffix."""
    bare = text[:-4]
    assert parse_span(text, START, END) == parse_span(bare, START, END)
    assert parse_time(text, START, END) == first


@pytest.mark.parametrize("text", ["UTC", " UTC", "2026-11-28 05:00+02:00 UTC", "2026-11-28T03:00Z UTC", "end UTC",
                                  "-10m UTC", "2026-11-28 05:00-02:00 UTC", "2026-11-28 03:14 UTC UTC"])
def test_utc_suffix_only_after_a_clock_time_without_offset(text):
    with pytest.raises(UsageError):
        parse_span(text, START, END)


@pytest.mark.parametrize("text", ["+99999999999d", "-99999999999d", "+1e300s", "-9999999999w", "10000-01-01"])
def test_out_of_range_times_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_span(text, START, END)
