"""A snapshot's tables as Python columns, written to Parquet by recorder/_pqwrite.c, without pyarrow.

A one-shot ``procsnap snapshot`` spent a third of its CPU on a small host outside its collection:
importing pyarrow (35 ms) and building Arrow tables to write a few hundred KB. With the C writer
it keeps the rows it collected as Python columns (:class:`Columns`) and writes them directly. The
files read back as the same Arrow types and values as pyarrow's (tests/test_pqwrite.py compares
both writers on real snapshots). A recorder writes its snapshots without descriptors this way
too; its descriptor snapshots stay Arrow (their rows become Arrow chunks as they come, which
keeps its peak flat), and compaction, which sorts and merges files, uses pyarrow.

Where the C module was not built, ``PROCSNAP_NATIVE=0`` is set, libzstd.so.1 is missing or another
compression is asked for, :meth:`Columns.to_arrow` gives the Arrow table and pyarrow writes it.
"""

from __future__ import annotations

import datetime as dt
import os

from . import __version__
from .schema import TABLES

try:
    from . import _pqwrite
except ImportError:  # built without a C compiler: pyarrow writes
    _pqwrite = None

# schema.py's type names -> the C writer's codes
CODES = {"bool": 0, "int32": 1, "int64": 2, "float64": 3, "string": 4, "binary": 5, "timestamp": 6, "date": 7}
CREATED_BY = f"procsnap version {__version__}"

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MICROSECOND = dt.timedelta(microseconds=1)
_EPOCH_DAY = dt.date(1970, 1, 1)


def available() -> bool:
    """Whether snapshots can be written without pyarrow on this machine."""
    return _pqwrite is not None and os.environ.get("PROCSNAP_NATIVE", "") != "0" and _pqwrite.available()


def micros(values) -> list:
    """Each datetime as µs since the epoch (None stays None), converted once per distinct value (a
    process's start time repeats on each of its rows). A naive datetime is taken as UTC, as Arrow
    takes it."""
    conv = {None: None}
    for v in set(values):
        if v is not None:
            conv[v] = ((v if v.tzinfo is not None else v.replace(tzinfo=dt.timezone.utc)) - _EPOCH) // _MICROSECOND
    return list(map(conv.__getitem__, values))


def days(values) -> list:
    return [None if v is None else (v - _EPOCH_DAY).days for v in values]


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

    def spec(self, stats_columns) -> list:
        """The C writer's column list: (name, type code, values, statistics?, kind, key) with kind
        0 for a sequence of values, 1 for one value on every row, 2 for a key of dict rows."""
        out = []
        for c in TABLES[self.name].stored_columns:
            kind, key = 0, None
            if c.name in self.common:
                kind, values = 1, self.common[c.name]
                if values is not None and c.type in ("timestamp", "date"):
                    values = (micros if c.type == "timestamp" else days)([values])[0]
            else:
                values = self.columns.get(c.name)
                if values is None:
                    kind = 1
                elif c.type in ("timestamp", "date"):  # converted here, in Python
                    if isinstance(values, Key):
                        values = values.values()
                    values = (micros if c.type == "timestamp" else days)(values)
                elif isinstance(values, Key):
                    kind, key, values = 2, values.key, values.rows
            out.append((c.name, CODES[c.type], values, c.name in stats_columns, kind, key))
        return out

    def parquet(self, stats_columns) -> bytes:
        """The table as the bytes of a Parquet file (see recorder/_pqwrite.c)."""
        return _pqwrite.write(self.spec(stats_columns), self.num_rows, CREATED_BY)

    def to_arrow(self):
        """The same table in Arrow (what pyarrow writes where the C writer is not available)."""
        from .collect import _to_table  # here: collect imports this module
        cols = {k: v.values() if isinstance(v, Key) else v for k, v in self.columns.items()}
        return _to_table(self.name, cols, self.common, self.num_rows)
