"""A fleet recording read by engines other than procsnap: the manifest of live files
(``procsnap manifest``), the types the files carry, and docs/fleet.md's queries run by DuckDB alone
and by Spark (local mode; skipped without Java or pyspark, deselected with ``-m "not spark"``),
each giving procsnap's own rows over a fleet in every state compaction leaves (tests.support.fleet).
"""

import csv
from collections import Counter
import datetime as dt
import decimal
import glob
import os
import re
import shutil
import sys

import duckdb
import pyarrow.parquet as pq
import pytest

from analyze.data.db import Recording
from analyze.data.named import bind, get_query
from recorder.collect.tables import to_table
from recorder.schema import TABLES
from recorder.store.layout import LIVE_DIR
from recorder.store.write import write_parquet

from tests.conftest import ROOT, run_cli
from tests.support.fleet import HOSTS, N, sid, when, write_fleet

DOC = (ROOT / "docs" / "fleet.md").read_text()
QUERIES = ("listening_sockets", "top_cpu", "fd_counts")
# The moments and window asked: D1 (web-1's compacted file beside the small files it merged), D2
# (0007's small files after its compacted range, 10's uncommitted last snapshot), across midnight.
ASKED = [("listening_sockets", {"at": when(3).isoformat()}), ("listening_sockets", {"at": when(11).isoformat()}),
         ("fd_counts", {"at": when(2).isoformat(), "limit": "40"}), ("fd_counts", {"at": when(11).isoformat()}),
         ("top_cpu", {"start": when(1).isoformat(), "end": when(10).isoformat(), "limit": "10"})]


def doc_sql(engine: str, name: str) -> str:
    m = re.search(rf"<!-- {engine}: {name} -->\n```sql\n(.*?)```", DOC, re.S)
    assert m, (engine, name)
    return m.group(1)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines") / "fleet"
    write_fleet(root)
    p = run_cli("manifest", "--write", root)
    assert p.returncode == 0, p.stderr
    return root


@pytest.fixture(scope="module")
def expected(fleet):
    """procsnap's own answers: each named query of ASKED, and rows per table and host."""
    rec = Recording.open([str(fleet)])
    out = []
    for name, given in ASKED:
        q = get_query(name)
        params = bind(q, given, rec)
        cols, rows = rec.execute(q.sql, params)
        out.append((name, params, cols, [norm(r) for r in rows]))
    counts = {t: sorted(rec.query(f"SELECT host, count(*) FROM {t} GROUP BY host")[1])
              for t in ("snapshots", "processes", "sockets", "open_files")}
    return out, counts


def norm(row) -> tuple:
    """A row as engines can agree on it: times as epoch microseconds (DuckDB gives them with their
    zone, Spark in local time without one), decimals as floats."""
    out = []
    for v in row:
        if isinstance(v, dt.datetime):
            v = round(v.timestamp() * 1_000_000)
        elif isinstance(v, decimal.Decimal):
            v = float(v)
        out.append(v)
    return tuple(out)


def manifest(root) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in sorted((root / LIVE_DIR).glob("host=*.csv")):
        with open(f) as fh:
            for r in csv.DictReader(fh):
                out.setdefault(r["table_name"], []).append(r["path"])
    return out


def test_the_manifest_lists_the_files_procsnap_reads_and_no_row_twice(fleet, expected):
    assert sorted(os.listdir(fleet / LIVE_DIR)) == [f"host={h}.csv" for h in HOSTS]
    live = manifest(fleet)
    for table, want in expected[1].items():
        t = pq.ParquetDataset([str(fleet / p) for p in live[table]], partitioning="hive").read(columns=["host"])
        assert sorted(Counter(t.column("host").to_pylist()).items()) == want, table
    # what a plain glob reads: web-1's compacted day beside its small files, 10's uncommitted snapshot
    globbed = len(pq.ParquetDataset(str(fleet / "processes"), partitioning="hive").read(columns=["pid"]))
    assert globbed > sum(n for _, n in expected[1]["processes"])
    listed = set(live["processes"])
    assert f"processes/host=10/date=2026-11-29/{sid(N - 1)}.parquet" not in listed
    assert not [p for p in listed if "host=web-1/date=2026-11-28/" in p and "/c" not in p]
    # printed, the same files, as paths to open
    p = run_cli("manifest", fleet, "--host", "web-1", check=0)
    rows = list(csv.DictReader(p.stdout.splitlines()))
    assert sorted(r["path"] for r in rows) == sorted(str(fleet / x) for t in live.values() for x in t if "host=web-1/" in x)


def test_no_unsigned_type_and_utc_microsecond_times(tmp_path, fleet):
    """Every table's columns as written: signed integers, timestamps in UTC microseconds; only
    text is dictionary-encoded."""
    for name, t in TABLES.items():
        f = tmp_path / f"{name}.parquet"
        fd = os.open(f, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            write_parquet(fd, to_table(name, [{}], {}))
        finally:
            os.close(fd)
        schema = pq.ParquetFile(f).schema
        for i in range(len(schema)):
            col = schema.column(i)
            lt = col.logical_type.to_json()
            assert '"isSigned":false' not in lt.replace(" ", ""), (name, col.name, lt)
            if t.column(col.name).type == "timestamp":
                assert col.physical_type == "INT64" and '"isAdjustedToUTC":true' in lt and "microseconds" in lt
    for f in glob.glob(str(fleet / "*" / "host=*" / "date=*" / "*.parquet")):
        md = pq.ParquetFile(f).metadata
        for i in range(md.num_columns):
            c = md.row_group(0).column(i)
            dictionary = any("DICTIONARY" in e for e in c.encodings)
            assert dictionary == (c.physical_type == "BYTE_ARRAY"), (f, c.path_in_schema, c.encodings)


def test_duckdb_alone_over_the_manifest_gives_procsnaps_rows(fleet, expected):
    con = duckdb.connect()
    views = doc_sql("duckdb", "views").replace("'/var/lib/procsnap'", f"'{fleet}'")
    for stmt in views.split(";"):
        if stmt.strip():
            con.execute(stmt)
    for name, params, cols, rows in expected[0]:
        cur = con.execute(get_query(name).sql, params)
        assert [d[0] for d in cur.description] == cols
        assert [norm(r) for r in cur.fetchall()] == rows, name
    assert sorted(con.execute("SELECT DISTINCT typeof(host) || ':' || host FROM processes").fetchall()) == \
        [(f"VARCHAR:{h}",) for h in HOSTS]


def trino_sql(name: str, params: dict) -> str:
    """docs/fleet.md's Trino query NAME with the moment, window and limit asked (the document
    writes them as literals: Trino's prepared statements take them by position)."""
    sql = doc_sql("trino", name)
    stamps = re.findall(r"TIMESTAMP '[^']*'", sql)
    values = [params["at"]] if "at" in params else [params["start"], params["end"]]
    assert len(stamps) == len(values), (name, stamps)
    for old, v in zip(stamps, values):
        t = v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(str(v))
        sql = sql.replace(old, f"TIMESTAMP '{t.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M:%S.%f}'", 1)
    if "limit" in params:
        sql = re.sub(r"LIMIT \d+\s*$", f"LIMIT {int(params['limit'])}", sql.rstrip())
    return sql


def test_trino_queries_parse_as_trino_and_give_procsnaps_rows(fleet, expected):
    """No Trino server runs here: each Trino query of docs/fleet.md is parsed as Trino SQL and
    translated by sqlglot to DuckDB's dialect, then run over the same live files (the DuckDB views
    stand for the document's Trino views, which keep the manifest's files by "$path")."""
    import sqlglot
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    views = doc_sql("duckdb", "views").replace("'/var/lib/procsnap'", f"'{fleet}'")
    for stmt in views.split(";"):
        if stmt.strip():
            con.execute(stmt)
    for name, params, cols, rows in expected[0]:
        (sql,) = sqlglot.transpile(trino_sql(name, params), read="trino", write="duckdb",
                                   unsupported_level=sqlglot.ErrorLevel.RAISE)
        cur = con.execute(sql)
        assert [d[0] for d in cur.description] == cols, name
        assert [norm(r) for r in cur.fetchall()] == rows, name


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    s = (SparkSession.builder.master("local[2]").appName("procsnap-test")
         .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
         .config("spark.sql.session.timeZone", "UTC").config("spark.driver.memory", "512m").getOrCreate())
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


@pytest.mark.spark
def test_spark_over_the_manifest_gives_procsnaps_rows(fleet, expected, spark):
    sys.path.insert(0, str(ROOT / "contrib" / "spark"))
    try:
        from procsnap_views import register
    finally:
        sys.path.pop(0)
    register(spark, str(fleet))
    for table, want in expected[1].items():
        assert sorted(tuple(r) for r in spark.sql(f"SELECT host, count(*) FROM {table} GROUP BY host").collect()) == want
    types = dict(spark.table("processes").dtypes)
    assert types["host"] == "string" and types["ts"] == "timestamp" and types["pid"] == "int"
    for name, params, cols, rows in expected[0]:
        sql = doc_sql("spark", name)
        df = spark.sql(sql, args={k: v for k, v in params.items() if f":{k}" in sql})
        assert df.columns == cols
        assert [norm(r) for r in df.collect()] == rows, name


def test_a_command_about_some_hosts_never_looks_at_the_others(fleet, tmp_path):
    """--host prunes at the listing: another host's folders are not opened, their damage not
    found (in a fleet of hundreds, the files of one host are all a command about it reads)."""
    copy = tmp_path / "fleet"
    shutil.copytree(fleet, copy)
    (copy / "processes" / "host=10" / "date=2026-11-28" / "123.parquet").write_bytes(b"not parquet")
    assert any("host=10" in d.path for d in Recording.open([str(copy)], err=False).damaged)
    rec = Recording.open([str(copy)], hosts=["0007"], err=False)
    assert not rec.damaged
    assert all("host=0007/" in f for files in rec.files.values() for f in files)
