"""A recorder on a tiny tmpfs that fills up: it says so once, keeps every written
file intact, drops snapshots (counted) without growing, and resumes when space
returns."""

import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from analyze.data.db import Recording

from tests.conftest import ROOT

pytestmark = [pytest.mark.root, pytest.mark.timing]


def _wait(cond, what, timeout=20.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _committed(out):
    return len(list(out.glob("snapshots/*/*/*.parquet")))


def test_full_disk(tmp_path, tiny_fs):
    out = tiny_fs / "rec"
    p = subprocess.Popen([sys.executable, "-m", "tests.support.recorder_child", str(tmp_path / "proc"), str(out),
                          "0.05", "0", "1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        _wait(lambda: _committed(out) >= 2, "two snapshots")
        filler = tiny_fs / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        full_at = _committed(out)
        time.sleep(1.0)  # the recorder keeps trying: ~20 snapshots' time
        filler.unlink()
        _wait(lambda: _committed(out) >= full_at + 3, "snapshots after space returned")
    finally:
        p.send_signal(signal.SIGTERM)
        stdout, stderr = p.communicate(timeout=30)
    assert p.returncode == 0, stderr
    assert stderr.count("No space left on device: dropping snapshots until space returns") == 1, stderr
    assert stderr.count("space returned") == 1, stderr
    assert "Traceback" not in stderr
    written, dropped = map(int, stdout.split()[1:3])
    assert dropped > 0
    for f in out.rglob("*.parquet"):
        pq.read_table(f)
    rec = Recording.open([str(out)])
    n, total_dropped, rss_first, rss_last = rec.con.execute(
        "SELECT count(*), sum(dropped), arg_min(recorder_rss, ts), arg_max(recorder_rss, ts) "
        "FROM snapshots").fetchone()
    assert n == written
    # Snapshots dropped while full are counted on the first written after; the last run of
    # drops may end with SIGTERM, so the stored count is at most the recorder's.
    assert 0 < total_dropped <= dropped
    # Dropping holds nothing back: memory after the full spell is about that of before.
    assert rss_last < rss_first + 20 * 2**20
    assert not list(out.rglob(".*.tmp"))
