"""No analyzer command can change a recording, whatever SQL it is given (issue 8, item 3; issue 18, item 1).

Three layers, each tested on its own:

* the SQL gate (:func:`analyze.data.gate.check_read_only`) lets through only queries and EXPLAIN
  [ANALYZE] of one, calling only allow-listed table functions: every statement type the
  installed DuckDB has, EXPLAIN and EXPLAIN ANALYZE of each, and nested forms are refused;
* the connection (:func:`analyze.data.engine.connect`) reads only inside the recordings and
  spills nowhere;
* ``procsnap query`` runs its SQL in a thread the kernel forbids to write
  (:mod:`analyze.data.sandbox`): a writing statement run there past the gate fails too.

End to end, each hostile statement goes through `procsnap query --rec DIR` and must fail with one
line (no traceback); afterwards every file of the recording, its marker included, has the same
bytes and mtime, and no file appeared in the recording, the current folder or /tmp.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from analyze.data import sandbox
from analyze.cli import main
from analyze.data.db import Recording
from analyze.data.engine import connect
from analyze.data.gate import READ_ONLY_TABLE_FUNCTIONS, check_read_only
from analyze.errors import ProcsnapError, UsageError

from tests.conftest import ROOT

try:
    import _duckdb as duckdb
except ImportError:  # pragma: no cover
    import duckdb

PROBE = f"procsnap-ro-probe-{uuid.uuid4().hex[:8]}"  # every path outside the recording a statement names

# One statement of each type DuckDB's parser gives, with a target that would change the recording
# or leave a file behind. {rec}: the recording, {snap}: one of its Parquet files, {out}: a folder
# outside it, {tmp}: a name under /tmp.
BY_TYPE = {
    "SELECT": ["SELECT count(*) FROM processes"],
    "ALTER": ["ALTER VIEW processes RENAME TO p2", "COMMENT ON VIEW processes IS 'x'"],
    "ATTACH": ["ATTACH '{rec}/new.duckdb' AS n", "ATTACH '{tmp}.duckdb' AS n"],
    "CALL": ["CALL enable_logging(storage = 'file', storage_path = '{rec}/log')", "CHECKPOINT"],
    "COPY": ["COPY (SELECT 1 AS x) TO '{snap}' (FORMAT parquet)", "COPY processes TO '{rec}/procsnap.json' (FORMAT csv)",
             "COPY (SELECT 1 AS x) TO '.tmp/x.csv'", "COPY (SELECT 1 AS x) TO '{tmp}.csv'"],
    "CREATE": ["CREATE TABLE t AS SELECT 1", "CREATE MACRO m(x) AS x", "CREATE PERSISTENT SECRET s (TYPE s3)"],
    "DELETE": ["DELETE FROM processes", "TRUNCATE processes"],
    "DETACH": ["DETACH memory"],
    "DROP": ["DROP VIEW processes"],
    "EXECUTE": ["EXECUTE p"],
    "EXPLAIN": ["EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{snap}' (FORMAT parquet)"],
    "EXPORT": ["EXPORT DATABASE '{rec}/export'", "EXPORT DATABASE '{out}/export'"],
    "INSERT": ["INSERT INTO processes SELECT * FROM processes"],
    "LOAD": ["INSTALL httpfs", "LOAD httpfs", "FORCE INSTALL parquet"],
    "MERGE_INTO": ["MERGE INTO processes USING processes p ON false WHEN NOT MATCHED THEN INSERT"],
    "MULTI": ["PIVOT (SELECT 1 AS a) ON a"],
    "PRAGMA": ["IMPORT DATABASE '{out}/import'", "PRAGMA enable_profiling", "COPY FROM DATABASE memory TO n"],
    "PREPARE": ["PREPARE p AS COPY (SELECT 1) TO '{rec}/p.csv'"],
    "SET": ["SET enable_external_access = true", "SET lock_configuration = false", "RESET allowed_directories",
            "SET temp_directory = '{rec}'", "SET VARIABLE x = 1", "USE memory",
            "PRAGMA profiling_output = '{rec}/profile.json'"],
    "TRANSACTION": ["BEGIN"],
    "UPDATE": ["UPDATE processes SET pid = 0"],
    "VACUUM": ["VACUUM", "ANALYZE"],
}
# Types no SQL text parses to: made by the relational API or a plan (RELATION, LOGICAL_PLAN), or
# kept in the enum with no statement of their own any more (COPY FROM DATABASE is a PRAGMA, SET
# VARIABLE a SET, ANALYZE a VACUUM, CREATE FUNCTION a CREATE, INSTALL a LOAD).
NOT_FROM_SQL = {"INVALID", "RELATION", "LOGICAL_PLAN", "ANALYZE", "COPY_DATABASE", "CREATE_FUNC", "EXTENSION",
                "VARIABLE_SET"}

# Nested and disguised forms: each must be refused as a whole.
NESTED = [
    "SELECT 1; COPY (SELECT 1) TO '{rec}/y.csv'",
    "SELECT 1; /* a comment */ COPY (SELECT 1) TO '{rec}/y.csv' -- another",
    "-- only a comment first\nEXPLAIN ANALYZE COPY (SELECT 1) TO '{rec}/y.csv'",
    "/* ( */ EXPLAIN /* ANALYZE */ ANALYZE (FORMAT json) COPY (SELECT 1) TO '{rec}/y.csv'",
    "EXPLAIN (FORMAT json) COPY (SELECT 1) TO '{rec}/y.csv'",
    "EXPLAIN ANALYSE EXPORT DATABASE '{rec}/e'",
    "EXPLAIN ANALYZE IMPORT DATABASE '{out}/import'",
    "EXPLAIN ANALYZE INSERT INTO processes SELECT * FROM processes",
    "WITH c AS (SELECT * FROM checkpoint()) SELECT * FROM c",
    "SELECT * FROM processes WHERE pid IN (SELECT 1 FROM enable_logging(storage = 'file', storage_path = '{rec}/l'))",
    "SELECT * FROM query('SELECT 1')",
    "SELECT * FROM query_table('processes')",
    "FROM main.force_checkpoint()",
    "SELECT * FROM (SELECT * FROM enable_profiling())",
    "SELECT * FROM range(3) r, LATERAL (SELECT * FROM truncate_duckdb_logs())",
    "SELECT * FROM read_duckdb('{rec}/x.duckdb')",
    "UPDATE EXTENSIONS",
    "SELECT 1; UPDATE EXTENSIONS",
    "CALL pragma_version()",
    "CALL enable_profiling()",
    "PRAGMA show_tables",
    "SET threads = 1; SELECT 1",
]

ALLOWED = [
    "SELECT count(*) FROM processes",
    "select 1",
    "-- a comment\nSELECT 1 /* another */;",
    "SELECT 1; SELECT 2",
    "WITH n AS (SELECT count(*) AS c FROM processes) SELECT c > 0 FROM n",
    "FROM processes LIMIT 1",
    "VALUES (1), (2)",
    "DESCRIBE processes",
    "SHOW TABLES",
    "SUMMARIZE snapshots",
    "SELECT * FROM range(3) r, LATERAL (SELECT * FROM generate_series(1, r.range))",
    "SELECT * FROM duckdb_settings() WHERE name = 'temp_directory'",
    "SELECT * FROM pragma_table_info('processes')",
    "(SELECT 1) UNION ALL (SELECT 2)",
    "EXPLAIN SELECT * FROM open_files",
    "EXPLAIN ANALYZE SELECT count(*) FROM processes",
    "EXPLAIN (FORMAT json) SELECT 1",
    "EXPLAIN ANALYZE (FORMAT json) /* ) */ SELECT ')'",
    "EXPLAIN (SELECT 1)",
    "/* c */ EXPLAIN /* d */ ANALYZE -- e\n SELECT 1",
    "SELECT * FROM snapshots WHERE ts <= $at",
]


def _fill(sql: str, rec, out) -> str:
    snap = next((rec / "processes").rglob("*.parquet"))
    return sql.format(rec=rec, snap=snap, out=out, tmp=f"/tmp/{PROBE}")


def every_hostile():
    for kind, sqls in BY_TYPE.items():
        for sql in sqls if kind != "SELECT" else ():
            yield sql
            yield "EXPLAIN " + sql
            yield "EXPLAIN ANALYZE " + sql
    yield from NESTED


def listing(root):
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            if p.is_file() else "dir" for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def rec(tmp_path_factory, sample):
    d = tmp_path_factory.mktemp("ro") / "rec"
    shutil.copytree(sample, d)
    return d


@pytest.fixture(scope="module")
def con():
    return connect([])


# ---------------------------------------------------------------------------- the gate


def test_the_examples_cover_every_statement_type_of_the_installed_duckdb(con):
    """A DuckDB that adds a statement type fails here until an example of it is added."""
    kinds = {m.name for m in type(con.extract_statements("SELECT 1")[0].type).__members__.values()}
    assert set(BY_TYPE) | NOT_FROM_SQL == kinds
    for kind, sqls in BY_TYPE.items():
        for sql in sqls:
            assert [s.type.name for s in con.extract_statements(_fill(sql, ROOT / "samples/recording", "/x"))] == [kind], sql


@pytest.mark.parametrize("sql", list(every_hostile()))
def test_the_gate_refuses(con, sample, sql):
    with pytest.raises(ProcsnapError) as e:
        check_read_only(con, _fill(sql, sample, "/nonexistent"))
    assert "not allowed" in str(e.value) or "SQL error" in str(e.value), e.value


@pytest.mark.parametrize("sql", ALLOWED)
def test_the_gate_lets_queries_through(con, sql):
    check_read_only(con, sql)


def test_only_allow_listed_table_functions_run(con):
    names = {r[0] for r in con.execute("SELECT DISTINCT function_name FROM duckdb_functions() "
                                       "WHERE function_type IN ('table', 'table_macro')").fetchall()}
    assert READ_ONLY_TABLE_FUNCTIONS <= names, READ_ONLY_TABLE_FUNCTIONS - names  # no typo in the list
    for name in sorted(names - READ_ONLY_TABLE_FUNCTIONS):
        for sql in (f"SELECT * FROM {name}()", f"SELECT (SELECT count(*) FROM {name}())",
                    f"WITH x AS (FROM {name}()) SELECT 1", f"EXPLAIN ANALYZE SELECT * FROM {name}()"):
            with pytest.raises(ProcsnapError, match="not allowed"):
                check_read_only(con, sql)


@pytest.mark.parametrize("sql", ["", "  ", ";", " ; ;", "-- nothing\n", "/* */"])
def test_no_statement_is_a_usage_error(con, sql):
    with pytest.raises(UsageError, match="no SQL statement"):
        check_read_only(con, sql)


@pytest.mark.parametrize("sql", ["", "  ", ";"])
def test_query_without_a_statement_says_so_in_one_line(cli, sample, sql):
    p = cli("query", "--rec", sample, sql)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip() == "procsnap: no SQL statement given" and p.stdout == ""


# ---------------------------------------------------------------------------- the connection


def test_the_connection_spills_nowhere_and_is_locked(con):
    assert con.execute("SELECT current_setting('temp_directory')").fetchone()[0] == ""
    assert con.execute("SELECT current_setting('lock_configuration')").fetchone()[0] is True
    with pytest.raises(duckdb.Error, match="disabled by configuration"):
        con.execute("COPY (SELECT 1) TO '.tmp/x.csv'")


@pytest.mark.live
def test_live_mode_has_no_file_access(cli):
    p = cli("query", "SELECT * FROM read_text('/etc/hostname')")
    assert p.returncode == 1 and "disabled by configuration" in p.stderr


@pytest.mark.live
def test_live_query_sees_other_processes_sockets(cli):
    """The live snapshot of `procsnap query` is taken before the SQL is confined: a confined
    thread may not inspect other processes, so sockets came out with no owner and their
    descriptors without a socket TYPE (ss -p and lsof -i show them)."""
    code = ("import socket, sys; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
            "print(s.getsockname()[1], flush=True); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline())
        p = cli("query", f"SELECT s.pid, o.type FROM sockets s LEFT JOIN open_files o USING (pid, inode) "
                         f"WHERE s.local_port = {port} AND s.state = 'LISTEN'", "-f", "csv", check=0)
        assert p.stdout.splitlines()[1:] == [f"{child.pid},IPv4"], p.stdout
    finally:
        child.stdin.close()
        child.wait(10)


# ---------------------------------------------------------------------------- end to end


def test_hostile_sql_fails_cleanly_and_changes_nothing(capsys, rec, tmp_path, monkeypatch):
    # In-process (main() is what the procsnap script runs) to keep the ~150 statements fast: the
    # query runs in a confined thread, the test's own thread stays as it was.
    out = tmp_path / "outside"
    out.mkdir()
    (out / "import").mkdir()
    (out / "import" / "schema.sql").write_text(f"COPY (SELECT 1) TO '{rec}/imported.csv';\n")
    (out / "import" / "load.sql").write_text("")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before, out_before = listing(rec), listing(out)
    bad = []
    for sql in every_hostile():
        code = main(["query", "--rec", str(rec), "-f", "csv", _fill(sql, rec, out)])
        o, e = capsys.readouterr()
        err = e.strip()
        if code not in (1, 2) or "Traceback" in err or len(err.splitlines()) != 1 or o:
            bad.append((sql, code, o, err))
    assert not bad, bad[:5]
    assert listing(rec) == before
    assert listing(out) == out_before
    assert list(cwd.iterdir()) == []
    assert not [p for p in os.listdir("/tmp") if PROBE in p]


def test_reading_still_works(cli, rec):
    p = cli("query", "--rec", rec, "-f", "csv", "WITH n AS (SELECT count(*) AS c FROM processes) SELECT c > 0 FROM n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "true"
    for sql in ("EXPLAIN SELECT * FROM open_files", "EXPLAIN ANALYZE SELECT count(*) FROM processes", "DESCRIBE processes",
                f"SELECT count(*) FROM parquet_metadata('{next((rec / 'processes').rglob('*.parquet'))}')"):
        p = cli("query", "--rec", rec, "-f", "csv", sql)
        assert p.returncode == 0, (sql, p.stderr)


# ---------------------------------------------------------------------------- the kernel's part

WRITERS = [
    "COPY (SELECT 1 AS x) TO '{snap}' (FORMAT parquet)",
    "EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{rec}/procsnap.json' (FORMAT csv)",
    "COPY (SELECT 1 AS x) TO '{rec}/new.csv'",
    "EXPORT DATABASE '{rec}/export'",
    "ATTACH '{rec}/new.duckdb' AS n",
]


@pytest.mark.skipif(sandbox.abi() < 1, reason="this kernel has no Landlock: the SQL gate alone holds")
def test_the_confined_connection_cannot_write_even_past_the_gate(rec, tmp_path):
    """The statements the gate refuses, executed on the connection directly (as a gate bug would
    let them): outside the confinement they write into a copy of the recording (so this test can
    fail), inside it every one fails and nothing changes."""
    scratch = tmp_path / "scratch"
    shutil.copytree(rec, scratch)
    r = Recording.open([str(scratch)], err=False)
    before = listing(scratch)
    for sql in WRITERS[:1]:
        r.con.execute(_fill(sql, scratch, tmp_path))
    assert listing(scratch) != before, "DuckDB's own settings let a statement write into the recording"

    def attempt():
        r = Recording.open([str(rec)], err=False)
        return [(sql, _try(r.con, _fill(sql, rec, tmp_path))) for sql in WRITERS]

    before = listing(rec)
    results = sandbox.confined(attempt)
    assert all(isinstance(err, duckdb.Error) for _, err in results), results
    assert any("Permission denied" in str(err) for _, err in results), results
    assert listing(rec) == before


def _try(con, sql):
    try:
        con.execute(sql)
    except Exception as e:  # noqa: BLE001
        return e
    return None


@pytest.mark.skipif(sandbox.abi() < 1, reason="this kernel has no Landlock")
def test_confinement_is_the_threads_own(tmp_path):
    """The confined thread cannot create a file; the caller's thread still can afterwards."""
    def create():
        try:
            (tmp_path / "inside").write_text("x")
        except OSError as e:
            return e.errno
        return 0
    import errno
    assert sandbox.confined(create) in (errno.EACCES, errno.EPERM)
    assert not (tmp_path / "inside").exists()
    (tmp_path / "outside").write_text("x")


@pytest.mark.skipif(sandbox.abi() < 4, reason="this kernel's Landlock does not restrict TCP")
def test_the_confined_thread_opens_no_tcp_connection():
    import errno
    import socket

    def connect():
        with socket.socket() as s:
            try:
                s.connect(("127.0.0.1", 9))  # the discard port: refused where nothing listens
            except OSError as e:
                return e.errno
        return 0

    assert sandbox.confined(connect) == errno.EACCES
    assert connect() != errno.EACCES


@pytest.mark.tools("strace")
def test_analyzer_opens_no_recording_file_for_writing(rec, tmp_path):
    """Every command over the recording, traced: no open of a recording path with a write flag."""
    log = tmp_path / "trace"
    code = ("import sys; from analyze.cli import main\n"
            "R = sys.argv[1]\n"
            "for a in (['info', R], ['ps', '--rec', R, '-e'], ['lsof', '--rec', R], ['top', '--rec', R, '-n', '3'],"
            " ['query', '--rec', R, 'SELECT count(*) FROM processes'], ['report', R]):\n"
            "    assert main(a) == 0, a\n")
    p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=open,openat,openat2,creat,truncate,rename,renameat,"
                        "renameat2,unlink,unlinkat,mkdir,mkdirat,utimensat", "-o", str(log),
                        sys.executable, "-c", code, str(rec)], cwd=ROOT, capture_output=True, text=True, timeout=180)
    if p.returncode != 0 and not log.exists():
        pytest.skip(f"strace cannot trace here: {p.stderr.strip()[:200]}")
    assert p.returncode == 0, p.stderr[-2000:]
    calls = log.read_text().splitlines()
    touched = [c for c in calls if str(rec) in c]
    assert any("O_RDONLY" in c for c in touched)  # the trace sees the reads
    writes = [c for c in touched if any(w in c for w in ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"))
              or c.split("(", 1)[0].split()[-1] in ("creat", "truncate", "rename", "renameat", "renameat2",
                                                      "unlink", "unlinkat", "mkdir", "mkdirat", "utimensat")]
    assert not writes, writes[:5]
