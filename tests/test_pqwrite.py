"""The C Parquet writer of one-shot snapshots (recorder/_pqwrite.c, recorder/pqwrite.py): what
pyarrow and DuckDB read back from its files must be what was written, with the types pyarrow's
own files of the same tables give, on made-up columns that reach every encoding path and on a
real snapshot of this host."""

from __future__ import annotations

import datetime as dt
import io
import os
import random
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recorder import pqwrite
from recorder.collect import Collector
from recorder.store import STATS_COLUMNS, Store, parquet_options
from tests.conftest import skip_unless_c_builds

needs_writer = pytest.mark.skipif(not pqwrite.available(), reason="recorder._pqwrite not built or no libzstd.so.1")


def test_writer_is_built_where_it_can_be():
    """A host with a C compiler, Python's headers and libzstd gets the C writer: a build that fails
    there must not pass unnoticed as the slower pyarrow path."""
    skip_unless_c_builds("pyarrow's writer")
    assert pqwrite._pqwrite is not None, "recorder/_pqwrite.c was not built (pip install -e . shows why)"
    if not any(Path(d, "libzstd.so.1").exists() for d in ("/lib", "/usr/lib", "/lib/x86_64-linux-gnu",
                                                          "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64")):
        pytest.skip("no libzstd.so.1 here")
    assert pqwrite.available()

UTC = dt.timezone.utc
ARROW = {0: pa.bool_(), 1: pa.int32(), 2: pa.int64(), 3: pa.float64(), 4: pa.string(), 5: pa.binary(),
         6: pa.timestamp("us", tz="UTC"), 7: pa.date32()}


def sql(text: str):
    return duckdb.connect().execute(text)


def write(tmp_path, spec, n, name="t.parquet"):
    path = tmp_path / name
    path.write_bytes(pqwrite._pqwrite.write(spec, n, pqwrite.CREATED_BY))
    return path


def expected(spec, n) -> pa.Table:
    """The table the spec describes, built by pyarrow."""
    arrays = []
    for name, code, values, _stats, kind, key in spec:
        if kind == 1:
            values = [values] * n
        elif kind == 2:
            values = [r.get(key) for r in values]
        arr = pa.array(values, pa.int64() if code == 6 else pa.int32() if code == 7 else ARROW[code])
        arrays.append(arr.view(ARROW[code]) if code in (6, 7) else arr)
    return pa.Table.from_arrays(arrays, names=[s[0] for s in spec])


def check(tmp_path, spec, n):
    path = write(tmp_path, spec, n)
    want = expected(spec, n)
    got = pq.read_table(path)
    assert got.schema == want.schema
    assert got.equals(want)
    # DuckDB reads the same rows (its own reader, not Arrow's)
    cur = sql(f"SELECT * FROM read_parquet('{path}')")
    assert [d[0] for d in cur.description] == want.column_names
    rows = cur.fetchall()
    assert len(rows) == n
    for j, f in enumerate(want.schema):
        a, b = [r[j] for r in rows], want.column(f.name).to_pylist()
        if pa.types.is_timestamp(f.type):
            a = [None if v is None else v.astimezone(UTC) for v in a]
        assert a == b, f.name
    return path


@needs_writer
def test_every_type_with_nulls_consts_and_keys(tmp_path):
    rnd = random.Random(7)
    n = 3000

    def maybe(v):
        return None if rnd.random() < 0.2 else v

    rows = [{"k": maybe(rnd.randint(-5, 5))} if rnd.random() < 0.9 else {} for _ in range(n)]
    spec = [
        ("b", 0, [maybe(rnd.random() < 0.5) for _ in range(n)], False, 0, None),
        ("i", 1, [maybe(rnd.randint(-2**31, 2**31 - 1)) for _ in range(n)], True, 0, None),
        ("l", 2, tuple(maybe(rnd.randint(-2**63, 2**63 - 1)) for _ in range(n)), True, 0, None),
        ("f", 3, [maybe(rnd.random() * 1e9 - 5e8) for _ in range(n)], False, 0, None),
        ("s", 4, [maybe(rnd.choice(["", "a", "é→✓", "x" * rnd.randint(0, 300), str(rnd.random())]))
                  for _ in range(n)], True, 0, None),
        ("y", 5, [maybe(bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 9)))) for _ in range(n)], True, 0, None),
        ("t", 6, [maybe(rnd.randint(-2**50, 2**50)) for _ in range(n)], True, 0, None),
        ("d", 7, [maybe(rnd.randint(-1000, 30000)) for _ in range(n)], True, 0, None),
        ("const_l", 2, 1_700_000_000_000_000, True, 1, None),
        ("const_s", 4, "vm", True, 1, None),
        ("const_null", 4, None, True, 1, None),
        ("key", 2, rows, True, 2, "k"),
        ("all_null", 2, [None] * n, True, 0, None),
    ]
    check(tmp_path, spec, n)


@needs_writer
@pytest.mark.parametrize("distinct", [1, 2, 255, 256, 257, 40000])
def test_dictionary_widths_and_runs(tmp_path, distinct):
    """Index widths from 1 to 16 bits, and runs around the RLE threshold of 8 (7, 8, 9, long)."""
    rnd = random.Random(distinct)
    n = 50000
    pattern = []
    while len(pattern) < n:
        v = f"v{rnd.randrange(distinct)}"
        pattern += [v] * rnd.choice([1, 1, 2, 7, 8, 9, 64, 1000])
    pattern = pattern[:n]
    nulls = [None if rnd.random() < 0.01 else v for v in pattern]
    runs = [True] * 8 + [False] * 7 + [True] * 9 + [None] * 17 + [rnd.random() < 0.5 for _ in range(n - 41)]
    check(tmp_path, [("s", 4, pattern, False, 0, None), ("sn", 4, nulls, False, 0, None),
                     ("b", 0, runs, False, 0, None)], n)


@needs_writer
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 17])
def test_small_tables(tmp_path, n):
    check(tmp_path, [("i", 2, list(range(n)), True, 0, None), ("s", 4, [str(i % 3) for i in range(n)], True, 0, None),
                     ("b", 0, [i % 3 == 0 for i in range(n)], False, 0, None)], n)


@needs_writer
def test_statistics_only_where_asked(tmp_path):
    spec = [("pid", 1, [5, None, 3, 9], True, 0, None), ("name", 4, ["b", "a", None, "c"], True, 0, None),
            ("ts", 6, [10, 20, None, 5], True, 0, None), ("size", 2, [1, 2, 3, 4], False, 0, None)]
    md = pq.ParquetFile(write(tmp_path, spec, 4)).metadata.row_group(0)
    stats = {md.column(i).path_in_schema: md.column(i).statistics for i in range(md.num_columns)}
    assert (stats["pid"].min, stats["pid"].max, stats["pid"].null_count) == (3, 9, 1)
    assert (stats["name"].min, stats["name"].max, stats["name"].null_count) == ("a", "c", 1)
    assert stats["ts"].min == dt.datetime.fromtimestamp(5 / 1e6, UTC)
    assert stats["size"] is None
    # and DuckDB prunes on them: a pid outside [3, 9] reads nothing
    assert sql(f"SELECT count(*) FROM read_parquet('{tmp_path / 't.parquet'}') WHERE pid = 100").fetchone() == (0,)


@needs_writer
def test_bad_values_are_errors_naming_the_column(tmp_path):
    with pytest.raises(TypeError, match="column pid: expected int, got str"):
        pqwrite._pqwrite.write([("pid", 2, ["1"], False, 0, None)], 1, "x")
    with pytest.raises(OverflowError, match="column fd_num"):
        pqwrite._pqwrite.write([("fd_num", 1, [2**31], False, 0, None)], 1, "x")
    with pytest.raises(ValueError, match="column a has 2 values, not 3"):
        pqwrite._pqwrite.write([("a", 2, [1, 2], False, 0, None)], 3, "x")
    with pytest.raises(TypeError, match="column name: expected str, got bytes"):
        pqwrite._pqwrite.write([("name", 4, [b"x"], False, 0, None)], 1, "x")
    with pytest.raises(TypeError, match="row 1 is not a dict"):
        pqwrite._pqwrite.write([("k", 2, [{}, 5], False, 2, "k")], 2, "x")


@needs_writer
def test_real_snapshot_reads_back_as_pyarrows_files(tmp_path):
    """Every table of a snapshot of this host: the C writer's file reads back (pyarrow and DuckDB)
    as the Arrow table of the same columns, whose schema is the recorder's (Arrow) tables'."""
    snap = Collector(arrow=False).snapshot()
    arrow_snap = Collector(arrow=True).snapshot(("processes",))
    assert snap.tables["open_files"].num_rows > 0 and snap.tables["sockets"].num_rows > 0
    for name, cols in snap.tables.items():
        want = cols.to_arrow()
        if name in arrow_snap.tables:
            assert want.schema == arrow_snap.tables[name].schema
        path = tmp_path / f"{name}.parquet"
        path.write_bytes(cols.parquet(STATS_COLUMNS))
        got = pq.read_table(path)
        assert got.equals(want), name
        assert sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchone() == (want.num_rows,)
        # no larger than pyarrow's file of the same table, written as the recorder writes it
        buf = io.BytesIO()
        pq.write_table(want, buf, **parquet_options(want.schema))
        assert path.stat().st_size <= len(buf.getvalue()) * 1.05, name


@needs_writer
def test_store_falls_back_to_pyarrow(tmp_path):
    """Another compression than the writer's: the Columns go through Arrow, same rows."""
    snap = Collector(arrow=False, tables=("processes",)).snapshot()
    for comp, d in (("zstd", tmp_path / "c"), ("snappy", tmp_path / "p")):
        with Store(d, compression=comp) as st:
            st.write(snap)
    f = lambda d: next(d.glob("processes/*/*/*.parquet"))  # noqa: E731
    assert pq.read_table(f(tmp_path / "c")).equals(pq.read_table(f(tmp_path / "p")))
    assert pq.ParquetFile(f(tmp_path / "p")).metadata.row_group(0).column(0).compression == "SNAPPY"
    assert pq.ParquetFile(f(tmp_path / "c")).metadata.created_by == pqwrite.CREATED_BY


@needs_writer
def test_one_shot_snapshot_does_not_import_pyarrow(tmp_path):
    out = tmp_path / "rec"
    code = ("import sys; from analyze.entry import main; rc = main(['snapshot', '-o', sys.argv[1], '-q']); "
            "print(rc, 'pyarrow' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "False"]
    n = sql(f"SELECT count(*) FROM read_parquet('{out}/open_files/*/*/*.parquet', hive_partitioning=true)").fetchone()[0]
    assert n > 0
    env = {**os.environ, "PROCSNAP_NATIVE": "0"}  # no C at all: pyarrow writes, same tables
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "py")], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "True"]
    for t in ("processes", "open_files", "snapshots"):
        a = pq.read_table(next(out.glob(f"{t}/*/*/*.parquet"))).schema
        b = pq.read_table(next((tmp_path / "py").glob(f"{t}/*/*/*.parquet"))).schema
        assert a == b, t


@needs_writer
def test_allocation_failures_raise_never_write_a_bad_file():
    """Each allocation of a write failing in turn: MemoryError, or a file that reads back whole
    (never one cut short: a truncated page, definition levels or statistics)."""
    _testcapi = pytest.importorskip("_testcapi")
    if not hasattr(_testcapi, "set_nomemory"):
        pytest.skip("this Python cannot fail allocations on purpose")
    n = 3000
    spec = [("s", 4, [None if i % 7 == 0 else f"value-{i % 997}-" + "x" * (i % 13) for i in range(n)], True, 0, None),
            ("i", 2, [None if i % 5 == 0 else i * 7919 for i in range(n)], True, 0, None),
            ("b", 0, [i % 3 == 0 for i in range(n)], False, 0, None)]
    want = expected(spec, n)
    outcomes = set()
    for k in range(0, 3000):  # until the k-th allocation is past the write's last one
        _testcapi.set_nomemory(k, k + 1)
        try:
            data = pqwrite._pqwrite.write(spec, n, "x")
        except MemoryError:
            outcomes.add("raised")
            continue
        finally:
            _testcapi.remove_mem_hooks()
        outcomes.add("written")
        if k > 0 and "raised" in outcomes and len(outcomes) == 2 and k % 50 == 0:
            break
        got = pq.read_table(io.BytesIO(data))
        assert got.equals(want), k
        md = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0)
        assert (md.column(0).statistics.min, md.column(1).statistics.max) == (
            min(v for v in spec[0][2] if v is not None), max(v for v in spec[1][2] if v is not None))
    assert outcomes == {"raised", "written"}


@needs_writer
def test_values_that_change_while_written_are_an_error():
    class Shrinking:
        def __float__(self):
            values.clear()
            return 1.0

    values = [Shrinking(), 2.0, 3.0]
    with pytest.raises(RuntimeError, match="changed while they were written"):
        pqwrite._pqwrite.write([("f", 3, values, False, 0, None)], 3, "x")
