"""A live process's descriptor limits: prlimit(2) on the live /proc, the limits file otherwise,
and the two agree (the limits file is what the fake-tree tests check)."""

from __future__ import annotations

import resource
import subprocess
import sys
import time

import pytest

from recorder.collect.collector import Collector
from recorder.source.procfs import ProcFS, parse_limits_nofile

pytestmark = pytest.mark.live


@pytest.fixture
def limited():
    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, (123, 456))
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=lower)
    time.sleep(0.2)
    yield p.pid
    p.kill()
    p.wait()


def _row(collector: Collector, pid: int) -> dict:
    rows = [r for r in collector.snapshot(("processes",)).tables["processes"].to_pylist() if r["pid"] == pid]
    assert len(rows) == 1
    return rows[0]


def test_prlimit_and_the_limits_file_agree(limited):
    live = Collector(tables=("processes",))
    assert live.processes.prlimit
    row = _row(live, limited)
    assert (row["fd_limit"], row["fd_limit_hard"]) == (123, 456)
    with open(f"/proc/{limited}/limits", "rb") as f:
        assert parse_limits_nofile(f.read()) == (123, 456)
    # the same /proc through another root spelling: read from the limits file
    assert not Collector(procfs=ProcFS("/proc/."), tables=("processes",)).processes.prlimit
    row2 = _row(Collector(procfs=ProcFS("/proc/."), tables=("processes",)), limited)
    assert (row2["fd_limit"], row2["fd_limit_hard"]) == (123, 456)


def test_a_refused_prlimit_falls_back_to_the_limits_file(limited, monkeypatch):
    from recorder.collect import processes
    live = Collector(tables=("processes",))
    live.processes.one_call = False  # the file-by-file path, where a refused prlimit is met
    monkeypatch.setattr(processes, "fd_limits", lambda pid: None)
    row = _row(live, limited)
    assert (row["fd_limit"], row["fd_limit_hard"]) == (123, 456)
    assert row["denied"] is None
