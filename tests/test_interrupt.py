"""Ctrl-C stops a running analyzer command promptly: exit 130, one line, no traceback (issue 17, item 4).

A real `procsnap` process runs a deliberately slow query over a recording; SIGINT is sent once
the query is under way (the process has used CPU well past its start-up), and the process must
be gone within a couple of seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.timing

# A cross join the engine runs in long tasks: DuckDB's Python module, which looks for signals only
# between tasks, ran it through Ctrl-C to the end (minutes).
SLOW = "SELECT count(*) FROM range(3000000000) a, processes WHERE a % 7 = 3"


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _interrupt_when_busy(args, busy: float = 2.0, env=None):
    # SIGINT at its default, as a foreground command has it, even when pytest itself runs as a
    # background job that ignores it (and procsnap rightly keeps ignoring it then)
    p = subprocess.Popen([sys.executable, "-m", "analyze.cli", *map(str, args)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        end = time.monotonic() + 60
        while _cpu_seconds(p.pid) < busy:
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < end, "the command never got busy"
            time.sleep(0.05)
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        return p.returncode, time.monotonic() - sent, out, err
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def test_ctrl_c_stops_a_running_query(sample):
    code, took, out, err = _interrupt_when_busy(["query", "--rec", sample, SLOW])
    assert code == 130, (code, err)
    assert took < 2.5, took
    assert err == "procsnap: interrupted\n", err
    assert out == ""


def test_ctrl_c_stops_a_named_query_too(sample, tmp_path):
    (tmp_path / "slow.sql").write_text(f"-- title: slow\n{SLOW}\n")
    env = dict(os.environ, PROCSNAP_QUERIES=str(tmp_path))
    code, took, _, err = _interrupt_when_busy(["query", "--rec", sample, "--name", "slow"], env=env)
    assert code == 130 and took < 2.5 and err == "procsnap: interrupted\n", (code, took, err)


def _big(sample, tmp_path, times: int):
    """A copy of the sample whose processes rows are repeated TIMES times in one compacted file
    (the small files it covers are then not read). Its snapshots are compacted too: a compacted
    file counts only when a compacted snapshots file commits its range."""
    import shutil

    try:
        import _duckdb as duckdb
    except ImportError:  # pragma: no cover
        import duckdb
    rec = tmp_path / "big"
    shutil.copytree(sample, rec)
    part = next((rec / "processes").glob("host=*/date=*"))
    ids = sorted(int(p.stem) for p in part.glob("*.parquet"))
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"COPY (SELECT p.* FROM read_parquet('{part}/*.parquet') p, range({times})) "
                f"TO '{part}/c{ids[0]}-{ids[-1]}.parquet' (FORMAT parquet)")
    snaps = next((rec / "snapshots").glob("host=*/date=*"))
    con.execute(f"COPY (SELECT * FROM read_parquet('{snaps}/*.parquet') ORDER BY snapshot_id) "
                f"TO '{snaps}/c{ids[0]}-{ids[-1]}.parquet' (FORMAT parquet)")
    con.close()
    return rec


def test_ctrl_c_stops_a_report_over_a_big_recording(sample, tmp_path):
    """The report's own SQL (no user SQL)."""
    code, took, _, err = _interrupt_when_busy(["report", _big(sample, tmp_path, 2000)], busy=2.5)
    assert code == 130, (code, err)
    assert took < 2.5, took
    assert err.endswith("procsnap: interrupted\n") and "Traceback" not in err, err


def test_ctrl_c_stops_ps_over_a_big_recording(sample, tmp_path):
    """ps runs without the command framework (analyze.entry); its rates are DuckDB's work."""
    code, took, _, err = _interrupt_when_busy(["ps", "-e", "--rec", _big(sample, tmp_path, 60)], busy=1.5)
    assert code == 130, (code, err)
    assert took < 2.5, took
    assert err.endswith("procsnap: interrupted\n") and "Traceback" not in err, err


@pytest.mark.live
def test_ctrl_c_still_ends_a_recording_cleanly(tmp_path):
    """record has its own Ctrl-C: finish the snapshot in hand, exit 0 (not 130)."""
    p = subprocess.Popen([sys.executable, "-m", "analyze.cli", "record", "-o", str(tmp_path / "rec"), "-i", "0.5", "-q"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        while not list((tmp_path / "rec").glob("snapshots/*/*/*.parquet")):
            assert p.poll() is None and time.monotonic() < end, p.communicate()
            time.sleep(0.1)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0 and err == "", (p.returncode, err)
