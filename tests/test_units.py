"""The one duration grammar and one size grammar (recorder.units), and that every reader of a
duration or size uses it."""

import pytest

from recorder.units import UnitError, parse_duration, parse_size


@pytest.mark.parametrize("text,secs", [("90", 90), ("1.5", 1.5), ("90s", 90), ("5m", 300), ("2h", 7200),
                                       ("1.5h", 5400), ("1h30m", 5400), ("1m30s", 90), ("1d", 86400),
                                       ("1w", 7 * 86400), ("1d2h", 93600), (" 2H ", 7200), ("0", 0)])
def test_durations(text, secs):
    assert parse_duration(text) == secs


@pytest.mark.parametrize("text", ["", " ", "abc", "5x", "m5", "5m3", "nan", "inf", "1h 30m", "1,5h", "h"])
def test_bad_durations_say_what_and_how(text):
    with pytest.raises(UnitError, match=r"^bad interval "):
        parse_duration(text, "interval")


@pytest.mark.parametrize("text", ["0", "0s", "-5", "0.0h"])
def test_positive_durations(text):
    with pytest.raises(UnitError, match="must be more than 0 seconds"):
        parse_duration(text, "incident duration", positive=True)


@pytest.mark.parametrize("text,n", [("800000", 800000), ("100M", 100 << 20), ("1G", 1 << 30), ("1GiB", 1 << 30),
                                    ("1GB", 1 << 30), ("2g", 2 << 30), ("1.5k", 1536), ("1T", 1 << 40),
                                    ("10b", 10), (" 5 M ", 5 << 20)])
def test_sizes_are_powers_of_1024(text, n):
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["", "M", "0", "0M", "-1G", "1X", "1 G B", "1e3"])
def test_bad_sizes(text):
    with pytest.raises(UnitError, match=r"^bad size .*: use bytes or a size like 500M, 2G$"):
        parse_size(text)


def test_the_analyzer_delegates_with_its_usage_error():
    from analyze.cli import parse_size as cli_size
    from analyze.data import timespec
    from analyze.errors import UsageError
    assert timespec.parse_duration("1h30m") == parse_duration("1h30m")
    assert cli_size("1GiB") == parse_size("1GiB")
    for f, bad in ((timespec.parse_duration, "1x"), (cli_size, "1x")):
        with pytest.raises(UsageError):
            f(bad)

