"""Live: CPU burners (more than the cores) make the always-on recorder enter the incident preset
within 5 s with a cpu pressure reason, and it ends after the quiet period once they stop; a
memory cgroup thrashing at its limit does the same with a memory pressure reason. (An OOM kill
as a trigger: tests/test_oom_live.py.)"""

import os
import signal
import subprocess
import sys
import time

import pytest

from analyze.data.db import Recording
from tests.support.cgroups import memcg  # noqa: F401 - a fixture

pytestmark = [pytest.mark.live, pytest.mark.root, pytest.mark.timing]


def _rows(out, sql):
    try:
        return Recording.open([str(out)], err=False).query(sql)[1]
    except Exception:  # noqa: BLE001 - not written yet
        return []


ALL = ("psi_cpu", "psi_memory", "psi_io", "mem_available", "load", "swap_in", "listen_drops", "tcp_retrans",
       "fs_full", "fd_limit", "kernel_report")


class Recorder:
    """The always-on recorder with only TRIGGER armed (at THRESHOLD), a 3 s quiet period and a
    pre-trigger ring of a frame a second over 4 s."""

    def __init__(self, tmp_path, trigger, threshold):
        cfg = tmp_path / "t.toml"
        cfg.write_text(f'quiet = "3s"\nring_every = "1s"\nring_span = "4s"\n[{trigger}]\nthreshold = {threshold}\n'
                       + "".join(f"[{t}]\nenabled = false\n" for t in ALL if t != trigger))
        self.out = tmp_path / "rec"
        self.p = subprocess.Popen([sys.executable, "-m", "analyze.entry", "record", "-o", str(self.out), "-q",
                                   "--triggers", str(cfg)], stderr=subprocess.PIPE, text=True)

    def rows(self, sql):
        return _rows(self.out, sql)

    def armed(self):
        """Wait for the first snapshot and the triggers' first windows; skip when the host is
        already past the threshold."""
        deadline = time.monotonic() + 30
        while not self.rows("SELECT 1 FROM snapshots"):
            assert self.p.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(5)
        if self.rows("SELECT 1 FROM snapshots WHERE incident"):
            pytest.skip("the host was already past the threshold before the test's load")

    def first_incident(self, like, since, within=20):
        first = []
        while not first and time.time() < since + within:
            time.sleep(0.2)
            first = self.rows(f"SELECT epoch(min(ts)) FROM snapshots WHERE incident AND incident_reason LIKE '{like}' "
                              "HAVING count(*) > 0")
        assert first, f"no incident snapshot with a reason like {like}"
        return first[0][0] - since

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        _, err = self.p.communicate(timeout=60)
        assert self.p.returncode == 0, err
        return err


def test_cpu_burners_start_an_incident_within_5_s_and_it_ends_after_the_quiet_period(tmp_path):
    if not os.path.exists("/proc/pressure/cpu"):
        pytest.skip("no PSI")
    rec = Recorder(tmp_path, "psi_cpu", 98)
    burners = []
    try:
        rec.armed()
        t0 = time.time()
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * os.cpu_count() + 2)]
        took = rec.first_incident("psi_cpu%", t0)
        for b in burners:
            b.kill()
            b.wait()
        burners = []
        assert took <= 5.0, f"the incident started {took:.1f} s after the burners"
        t1 = time.time()
        ended = []
        while not ended and time.time() < t1 + 30:  # quiet for 3 s: back to the always-on cadence
            time.sleep(0.3)
            ended = rec.rows(f"SELECT 1 FROM snapshots WHERE NOT incident AND epoch(ts) > {t1}")
        assert ended, "the incident did not end after the quiet period"
    finally:
        for b in burners:
            b.kill()
        err = rec.stop()
    assert "trigger psi_cpu" in err
    rows = rec.rows("SELECT trigger, value >= threshold / 2, suppressed FROM triggers")
    assert rows and all(r == ("psi_cpu", True, False) for r in rows)
    # the minutes before (here the last 4 s): the ring's frames, written when the incident started
    (ring,) = rec.rows("WITH i AS (SELECT epoch(min(ts)) AS t FROM snapshots WHERE incident) "
                       "SELECT count(*), epoch(min(ts)) - any_value(i.t), epoch(max(ts)) - any_value(i.t), "
                       "min(processes_seen) > 0, max(threads_seen) FROM snapshots, i WHERE early = 'ring'")
    assert ring[0] >= 2 and -5.5 < ring[1] < ring[2] < 0 and ring[3] and ring[4] is None, ring


THRASH = """
import mmap, os, sys, time
path = sys.argv[1]
with open(path, 'wb') as f:  # written from inside the cgroup: its pages are charged to it
    for _ in range(80):
        f.write(os.urandom(1 << 20))
print('ready', flush=True)
f = open(path, 'rb')
m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
end = time.monotonic() + 15
while time.monotonic() < end:  # a working set over the cgroup's limit: reclaim and refaults
    for i in range(0, len(m), 4096):
        m[i]
"""


def test_a_memory_cgroup_thrashing_at_its_limit_starts_an_incident_with_a_memory_reason(tmp_path, memcg):
    if not os.path.exists("/proc/pressure/memory"):
        pytest.skip("no PSI")
    name, g = memcg
    rec = Recorder(tmp_path, "psi_memory", 5)
    thrash = None
    try:
        rec.armed()
        thrash = subprocess.Popen([sys.executable, "-c", THRASH, str(tmp_path / "data")], stdout=subprocess.PIPE,
                                  text=True, preexec_fn=lambda: (g / "cgroup.procs").write_text(str(os.getpid())))
        t0 = time.time()
        assert thrash.stdout.readline() == "ready\n"
        took = rec.first_incident("psi_memory%", t0)
        assert took <= 5.0, f"the incident started {took:.1f} s after the thrashing"
    finally:
        if thrash is not None:
            thrash.kill()
            thrash.wait()
        err = rec.stop()
    assert "trigger psi_memory" in err
