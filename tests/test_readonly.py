"""No analyzer command can change a recording, whatever SQL it is given (issue 8, item 3).

Each hostile statement goes through `procsnap query --rec DIR` and must fail with
one line (exit 1, no traceback); afterwards every file of the recording has the
same bytes and mtime, no file was added, and nothing was written outside it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys

import pytest

from analyze.cli import main

from .conftest import ROOT


def listing(root):
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def rec(tmp_path_factory, sample):
    d = tmp_path_factory.mktemp("ro") / "rec"
    shutil.copytree(sample, d)
    return d


HOSTILE = [
    "COPY (SELECT 1 AS x) TO '{rec}/x.csv'",
    "COPY (SELECT 1 AS x) TO '{out}/x.csv'",
    "COPY (SELECT * FROM processes) TO '{snap}'",
    "COPY processes TO '{rec}/procsnap.json' (FORMAT csv)",
    "SELECT 1; COPY (SELECT 1) TO '{rec}/y.csv'",
    "EXPORT DATABASE '{rec}/export'",
    "EXPORT DATABASE '{out}/export'",
    "ATTACH '{rec}/new.duckdb' AS n",
    "ATTACH '{out}/new.duckdb' AS n",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "RESET allowed_directories",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('{rec}/../../../../../../etc/passwd')",
    "SELECT * FROM glob('/etc/*')",
    "CREATE TABLE t AS SELECT 1",
    "DROP VIEW processes",
]


@pytest.mark.parametrize("sql", HOSTILE)
def test_hostile_sql_fails_cleanly_and_changes_nothing(capsys, rec, tmp_path, sql):
    # In-process (main() is what the procsnap script runs) to keep 19 cases fast.
    out = tmp_path / "outside"
    out.mkdir()
    snap = next((rec / "snapshots").rglob("*.parquet"))
    before = listing(rec)
    code = main(["query", "--rec", str(rec), "-f", "csv", sql.format(rec=rec, out=out, snap=snap)])
    o, e = capsys.readouterr()
    assert code == 1, (o, e)
    err = e.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert ("not allowed" in err or "disabled by configuration" in err), err
    assert listing(rec) == before
    assert list(out.iterdir()) == []


def test_reading_still_works(cli, rec):
    p = cli("query", "--rec", rec, "-f", "csv", "WITH n AS (SELECT count(*) AS c FROM processes) SELECT c > 0 FROM n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "true"
    p = cli("query", "--rec", rec, "-f", "csv", "EXPLAIN SELECT * FROM open_files")
    assert p.returncode == 0, p.stderr


def test_live_mode_has_no_file_access(cli):
    p = cli("query", "SELECT * FROM read_text('/etc/hostname')")
    assert p.returncode == 1 and "disabled by configuration" in p.stderr


def test_analyzer_opens_no_recording_file_for_writing(rec, tmp_path):
    """Every command over the recording, traced: no open of a recording path with a write flag."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
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
