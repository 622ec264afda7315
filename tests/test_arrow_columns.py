"""recorder.collect.tables.to_arrow: the recorder's fast conversion of a column gives what pa.array gives."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from recorder.collect.tables import to_arrow

TS = pa.timestamp("us", tz="UTC")
zones = st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                         dt.timezone(-dt.timedelta(hours=8))])
moments = st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2200, 1, 1), timezones=zones)


@given(st.lists(st.one_of(st.none(), moments), max_size=40))
def test_timestamps_as_arrow_converts_them(values):
    # repeated values, as a process's start time is on each of its rows
    values = values + values[: len(values) // 2]
    assert to_arrow(values, TS).equals(pa.array(values, TS))
    assert to_arrow(tuple(values), TS).equals(pa.array(values, TS))


def test_other_types_go_to_arrow_unchanged():
    assert to_arrow((1, None, 3), pa.int32()).equals(pa.array([1, None, 3], pa.int32()))
    assert to_arrow(["a", None], pa.string()).equals(pa.array(["a", None], pa.string()))
    assert to_arrow((), TS).equals(pa.array([], TS))
