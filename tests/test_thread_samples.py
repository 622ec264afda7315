"""Where threads wait: the syscall file's parser, and on the real kernel a thread blocked in
read() on a pipe sampled with that call and its descriptor, a busy thread sampled as R, nothing
of a secret in argv in what is sampled, the sampler running only under the incident preset, and
report's finding."""

import os
import subprocess
import sys
import time

import pytest

from analyze.commands import report as Rp
from analyze.data.db import Recording
from recorder import record as R
from recorder.collect import thread_samples as TS
from recorder.collect.collector import Collector
from recorder.store.folder import Store
from tests.support.record_loop import KeepOpen

SECRET = "hunter2-thread-samples"


def test_parse_syscall():
    assert TS.parse_syscall(b"0 0x3 0x7ffd 0x1 0x0 0x0 0x0 0x7ffc 0x7f12\n") == (0, "0x3", None)
    assert TS.parse_syscall(b"running\n") == (None, None, "running")
    assert TS.parse_syscall(b"-1 0x7ffc 0x7f12\n") == (-1, None, "not in a system call")
    assert TS.parse_syscall(b"") == (None, None, None) and TS.parse_syscall(b"x y") == (None, None, None)


def test_the_kernel_table_names_read_when_the_host_has_it():
    names = TS.syscall_names()
    if not names:
        pytest.skip("no kernel headers for this architecture")
    assert names[0] == "read" and names[1] == "write"


WORKER = f"""
import os, sys, threading
r, w = os.pipe()
os.dup2(r, 57)
def busy():
    while True: pass
threading.Thread(target=busy, daemon=True).start()
print('up', flush=True)
os.read(57, 1)
"""


@pytest.mark.live
@pytest.mark.root
def test_a_pipe_reader_and_a_busy_thread_are_sampled_and_the_secret_is_not(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", WORKER, f"--password={SECRET}"], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "up\n"
        col = Collector(host="h", tables=("system", "processes", "threads"))
        from recorder.collect import system
        sampler = TS.Sampler(col.boot_id, system.read_proc_stat(col.fs)["btime"], states="RDS", period=0.1).start()
        root = tmp_path / "r"
        with Store(root) as st:
            R.record(st, col, 0.5, count=2, thread_samples=KeepOpen(sampler))  # no incident: no sample
            R.record(st, col, 0.5, count=3, incident=5, thread_samples=sampler)  # the incident preset: sampled
    finally:
        p.kill()
        p.wait()
    rec = Recording.open([str(root)])
    snaps = rec.query("SELECT thread_samples FROM snapshots ORDER BY ts")[1]
    assert [s[0] for s in snaps[:2]] == [0, 0] and all(s[0] > 0 for s in snaps[3:]) and len(snaps) == 5
    rows = rec.query("SELECT DISTINCT state, syscall_nr, syscall, arg0, wchan, activity FROM thread_samples "
                     "WHERE pid = $p", {"p": p.pid})[1]
    assert (("S", 0, "read" if TS.syscall_names() else None, "0x39") in [r[:4] for r in rows]), rows
    assert ("R", None, None, None, None, "running") in rows, rows
    # joins threads by identity
    assert rec.query("SELECT count(*) FROM thread_samples s JOIN threads t USING (boot_id, pid, tid, start_time) "
                     "WHERE s.pid = $p", {"p": p.pid})[1][0][0] > 0
    for dirpath, _, files in os.walk(root / "thread_samples"):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                assert SECRET.encode() not in fh.read()
    (f,) = [f for f in Rp.run(rec)["findings"] if f.kind == "threads.wait"]
    assert f.evidence["thread_samples"] > 0 and rec.execute(f.sql)[1]
    # top's WAIT column over the last interval: the worker's threads, running or in read()
    import io
    import json
    from analyze.commands import top as T
    out = io.StringIO()
    assert T.run([str(root)], None, None, None, "wait", "json", 0, out=out, err=io.StringIO()) == 0
    doc = json.loads(out.getvalue())
    (me,) = [r for r in doc["processes"] if r["pid"] == p.pid]
    assert doc["summary"]["thread_samples"] > 0 and me["wait"] in ("R", "S read") and me["wait_pct"] >= 50, me
