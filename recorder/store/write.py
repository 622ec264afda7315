"""A snapshot's tables as Python columns (:class:`Columns`), the collector's second table type
beside Arrow tables: what a collector made with arrow=False gives. Every file is written by
pyarrow (recorder/store/folder.py), so a Columns table becomes an Arrow table (:meth:`Columns.to_arrow`)
when it is written.
"""

from __future__ import annotations

import datetime as dt

from recorder.schema import TABLES

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MICROSECOND = dt.timedelta(microseconds=1)


def micros(values) -> list:
    """Each datetime as µs since the epoch (None stays None), converted once per distinct value (a
    process's start time repeats on each of its rows). A naive datetime is taken as UTC, as Arrow
    takes it."""
    conv = {None: None}
    for v in set(values):
        if v is not None:
            conv[v] = ((v if v.tzinfo is not None else v.replace(tzinfo=dt.timezone.utc)) - _EPOCH) // _MICROSECOND
    return list(map(conv.__getitem__, values))


class Key:
    """A column of rows that are dicts: each row's value of key (a missing key is a null)."""

    __slots__ = ("rows", "key")

    def __init__(self, rows: list, key: str):
        self.rows = rows
        self.key = key

    def values(self) -> list:
        return [r.get(self.key) for r in self.rows]


class Columns:
    """One stored table of a snapshot as Python columns: ``columns`` maps a column to a list or
    tuple of num_rows values, or to a :class:`Key` of the rows; ``common`` gives the columns that
    have one value on every row. A column in neither is null."""

    __slots__ = ("name", "columns", "num_rows", "common")

    def __init__(self, name: str, columns: dict, num_rows: int, common: dict):
        self.name = name
        self.columns = columns
        self.num_rows = num_rows
        self.common = common

    @classmethod
    def of(cls, name: str, rows, common: dict) -> "Columns":
        """From rows (a list of dicts) or columns (a dict of lists)."""
        if isinstance(rows, dict):
            n = len(next(iter(rows.values()))) if rows else 0
            return cls(name, rows, n, common)
        rows = rows if isinstance(rows, list) else list(rows)
        cols = {c.name: Key(rows, c.name) for c in TABLES[name].stored_columns if c.name not in common}
        return cls(name, cols, len(rows), common)

    def set(self, name: str, value) -> None:
        """Give a stored column one value on every row (a name the table does not have is ignored,
        as the recorder's annotations of Arrow tables ignore it)."""
        if any(c.name == name for c in TABLES[self.name].stored_columns):
            self.columns.pop(name, None)
            self.common = {**self.common, name: value}  # common may be shared with other tables

    def to_arrow(self):
        """The same table in Arrow (what the store writes)."""
        from recorder.collect.collector import _to_table  # here: collect imports this module
        cols = {k: v.values() if isinstance(v, Key) else v for k, v in self.columns.items()}
        return _to_table(self.name, cols, self.common, self.num_rows)
