"""SIGKILL the recorder at random moments, many times, while it writes and compacts:
every file still reads, no snapshot appears twice, no committed snapshot is lost."""

import os
import random
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from analyze.data.db import Recording
from recorder.store.compact import recover

from tests.conftest import ROOT
from tests.support.recorder_child import open_when_free

pytestmark = pytest.mark.timing

ROUNDS = 10


def _start(proc, out):
    p = subprocess.Popen([sys.executable, "-m", "tests.support.recorder_child", str(proc), str(out), "0.05", "3", "2"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready", p.stderr.read()
    return p


def _check(out):
    """Every visible file reads, each snapshot once, each (snapshot, pid) once; returns the ids."""
    rec = Recording.open([str(out)])
    ids = [r[0] for r in rec.con.execute("SELECT snapshot_id FROM snapshots").fetchall()]
    assert len(ids) == len(set(ids))
    dup = rec.con.execute("SELECT count(*) FROM (SELECT snapshot_id, pid, tid FROM threads "
                          "GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
    assert dup == 0
    orphans = rec.con.execute("SELECT count(*) FROM processes WHERE snapshot_id NOT IN "
                              "(SELECT snapshot_id FROM snapshots)").fetchone()[0]
    assert orphans == 0
    return set(ids)


def test_sigkill_at_random_moments(tmp_path):
    rnd = random.Random(7)
    proc, out = tmp_path / "proc", tmp_path / "rec"
    committed: set[int] = set()
    for _ in range(ROUNDS):
        p = _start(proc, out)
        time.sleep(rnd.uniform(0.1, 0.8))
        seen = _check(out)  # a reader while the recorder writes and compacts
        assert committed <= seen
        committed = seen
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        p.stdout.close()
        p.stderr.close()
        after = _check(out)  # a reader right after the kill, before any clean-up
        assert committed <= after, "a committed snapshot was lost"
        committed = after
    with open_when_free(out) as st:  # the last kill may have orphaned a compaction child
        recover(st)
    assert committed <= _check(out)
    assert len(committed) >= ROUNDS  # the recorder did make progress each round
    for f in out.rglob("*.parquet"):
        pq.read_table(f)  # raises on a torn file
    assert not [f for f in out.rglob(".*.tmp")]
