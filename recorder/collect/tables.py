"""Arrow tables of the recorder's schema, built from rows: the one table type a snapshot holds
and the store writes, and the one way to build it (:func:`to_table`)."""

from __future__ import annotations

import datetime as dt

from recorder.schema import TABLES

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    import pyarrow as pa

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


def to_arrow(values, typ):
    """An Arrow array of typ from a sequence of Python values. Timestamps (a process's start
    time, repeated on each of its rows) are converted once per distinct value and viewed as
    typ, rather than each datetime by Arrow."""
    import pyarrow as pa
    if isinstance(values, pa.Array):
        return values
    if pa.types.is_timestamp(typ) and typ.unit == "us":
        return pa.array(micros(values), pa.int64()).view(typ)
    return pa.array(values, typ)


def arrow_columns(name: str, columns: dict) -> dict:
    """COLUMNS (lists of table NAME's columns) as Arrow arrays of its schema's types, for
    to_table; the lists are let go one by one as they are converted."""
    types = {f.name: f.type for f in TABLES[name].arrow_schema()}
    for k in list(columns):
        columns[k] = to_arrow(columns[k], types[k])
    return columns


def to_table(name: str, rows, common: dict, n: int | None = None) -> "pa.Table":
    """The Arrow table of schema table NAME's stored columns from rows (a list of dicts; a missing
    key is a null) or columns (a dict of lists, N rows, by default the first column's length); a
    column in COMMON has that one value on every row."""
    import pyarrow as pa
    schema = TABLES[name].arrow_schema()
    if isinstance(rows, dict):
        columns = rows
        if n is None:
            n = len(next(iter(columns.values()))) if columns else 0  # a list or an Arrow array
    else:
        # Arrow reads the dicts itself, faster than a list per column built here.
        columns = pa.Table.from_pylist(rows, schema=pa.schema([f for f in schema if f.name not in common]))
        n = len(rows)
    cols = []
    for f in schema:
        if f.name in common:
            cols.append(pa.repeat(pa.scalar(common[f.name], f.type), n))
        elif isinstance(columns, dict):
            v = columns.get(f.name)
            cols.append(to_arrow(v, f.type) if v is not None else pa.nulls(n, f.type))
        else:
            cols.append(columns.column(f.name))
    return pa.Table.from_arrays(cols, schema=schema)
