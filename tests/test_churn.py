"""Recording under churn (issue 8, item 5).

While workers fork and reap hundreds of short-lived processes a second (each
opening descriptors and a socket pair) and a thread opens and closes thousands
of descriptors, the recorder takes snapshots into a real recording. Then: every
thread, descriptor and socket row has its process row in the same snapshot, and
the snapshots table counts what vanished mid-read.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from analyze.data.db import Recording
from recorder.collect.collector import Collector
from recorder.store.folder import Store

from tests.support.fakeproc import FakeProc, FaultyProcFS

pytestmark = [pytest.mark.live, pytest.mark.timing]

WORKER = r"""
import os, socket, sys, threading, time

def descriptors():
    while True:
        fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(1000)]
        for fd in fds:
            os.close(fd)

threading.Thread(target=descriptors, daemon=True).start()
n = 0
while True:
    kids = []
    for i in range(16):
        pid = os.fork()
        if pid == 0:
            fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(40)]
            a, b = socket.socketpair()
            time.sleep(0.002 * (i % 4))
            os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)
    n += len(kids)
    if n % 320 == 0:
        sys.stdout.write(f"{n}\n"); sys.stdout.flush()
"""

SNAPSHOTS = 3  # each one full (descriptors too) on a host whose two cores the workers keep busy


def test_snapshots_stay_consistent_under_churn(tmp_path):
    workers = [subprocess.Popen([sys.executable, "-c", WORKER], stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    try:
        for w in workers:  # both are forking before the first snapshot
            assert w.stdout.readline().strip().isdigit()
        collector = Collector(host="churn", interval=0.5)
        with Store(tmp_path / "rec") as store:
            for _ in range(SNAPSHOTS):
                store.write(collector.snapshot())
        for w in workers:
            assert w.poll() is None, "a worker died: the churn stopped"
    finally:
        for w in workers:
            w.kill()
            w.wait()

    rec = Recording.open([str(tmp_path / "rec")])
    q = rec.con.execute
    assert q("SELECT count(*) FROM snapshots").fetchone()[0] == SNAPSHOTS
    # Children were caught alive: the churn reached the recording.
    assert q("SELECT count(*) FROM processes p JOIN open_files f USING (snapshot_id, pid, start_time) "
             "WHERE f.name = '/dev/null'").fetchone()[0] > 0
    for table, key in (("open_files", "pid, start_time"), ("sockets", "pid, start_time"), ("threads", "pid")):
        orphans = q(f"""SELECT count(*) FROM {table} t WHERE t.pid IS NOT NULL AND NOT EXISTS (
                          SELECT 1 FROM processes p WHERE p.snapshot_id = t.snapshot_id AND p.host = t.host
                          AND ({', '.join('p.' + k.strip() for k in key.split(','))})
                              = ({', '.join('t.' + k.strip() for k in key.split(','))}))""").fetchone()[0]
        assert orphans == 0, f"{orphans} {table} rows without their process in the same snapshot"
    # Threads belong to their process instance too: a thread started no earlier than its process.
    assert q("SELECT count(*) FROM threads t JOIN processes p USING (snapshot_id, pid) "
             "WHERE t.start_time < p.start_time").fetchone()[0] == 0
    # What vanished mid-read is counted, and what is counted as seen is what was stored.
    gone, seen_ok = q("""SELECT sum(processes_gone + coalesce(threads_gone, 0) + coalesce(open_files_gone, 0)),
                                bool_and(processes_seen = (SELECT count(*) FROM processes p
                                                           WHERE p.snapshot_id = s.snapshot_id))
                         FROM snapshots s""").fetchone()
    assert gone > 0
    assert seen_ok


def test_a_process_that_vanishes_after_its_threads_leaves_no_thread_rows(tmp_path):
    """The window the churn test samples, made certain: the process exits between its
    threads and its descriptors. Its thread rows must go with it."""
    fake = FakeProc(tmp_path / "proc")
    fake.add_process(pid=1, comm=b"init", ppid=0, cmdline=b"/sbin/init\0")
    fake.add_process(pid=42, comm=b"brief", threads=[42, 43])
    fs = FaultyProcFS(fake.root, after={(42, "task", 43, "status"): lambda: shutil.rmtree(fake.root / "42")})
    snap = Collector(procfs=fs, host="fake").snapshot()
    assert 42 not in snap.tables["processes"].column("pid").to_pylist()
    assert 42 not in snap.tables["threads"].column("pid").to_pylist()
    assert 42 not in snap.tables["open_files"].column("pid").to_pylist()
    assert snap.tables["snapshots"].column("processes_gone").to_pylist() == [1]
