"""Live: a process OOM-killed inside a memory cgroup with a small limit. The recording has the
kernel's OOM record with the cgroup and its limit, tied to the process's rows in `processes`
(its identity: boot, pid, start time from its exit event) and to its exit by SIGKILL,
`procsnap report` names it, and the kill started the incident preset (a trigger)."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from analyze.commands import report as Rp
from analyze.data.db import Recording
from tests.support.cgroups import LIMIT, memcg  # noqa: F401 - a fixture

pytestmark = [pytest.mark.live, pytest.mark.root]

HOG = ("import sys, time\n"
       "x = []\n"
       "sys.stdout.write('ready\\n'); sys.stdout.flush(); sys.stdin.readline()\n"
       "while True:\n"
       "    x.append(bytearray(4 << 20)); time.sleep(0.05)\n")


def test_an_oom_kill_is_tied_to_its_process_and_named_by_report(tmp_path, memcg):
    name, g = memcg
    out = tmp_path / "rec"
    (tmp_path / "triggers.toml").write_text("")  # the default triggers, armed beside -i
    rec_proc = subprocess.Popen([sys.executable, "-m", "analyze.entry", "record", "-o", str(out), "-i", "0.5",
                                 "-d", "60", "-q", "--triggers", str(tmp_path / "triggers.toml")],
                                stderr=subprocess.PIPE, text=True)
    hog = subprocess.Popen([sys.executable, "-c", HOG], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        (g / "cgroup.procs").write_text(str(hog.pid))
        assert hog.stdout.readline() == "ready\n"
        time.sleep(1.2)  # snapshots see it before it grows
        hog.stdin.write("go\n")
        hog.stdin.flush()
        assert hog.wait(timeout=30) == -signal.SIGKILL
        time.sleep(1.2)  # the next snapshots take the events
    finally:
        if hog.poll() is None:
            hog.kill()
        rec_proc.send_signal(signal.SIGINT)
        _, err = rec_proc.communicate(timeout=30)
    assert rec_proc.returncode == 0, err
    rec = Recording.open([str(out)])
    kill = rec.query("SELECT boot_id, time, comm, cgroup, oom_constraint, memory_limit, anon_rss FROM kernel_events "
                     "WHERE kind = 'oom_kill' AND pid = $p", {"p": hog.pid})[1]
    assert len(kill) == 1, rec.query("SELECT kind, text FROM kernel_events WHERE kind IS NOT NULL")[1]
    boot, when, comm, cgroup, constraint, limit, anon = kill[0]
    assert (comm, cgroup, constraint, limit) == (os.path.basename(sys.executable)[:15], "/" + name,
                                                "CONSTRAINT_MEMCG", LIMIT)
    assert anon > LIMIT // 2
    # Its exit: SIGKILL, with the identity that its rows in processes have.
    (exit_,) = rec.query("SELECT signal, start_time FROM process_events WHERE kind = 'exit' AND pid = $p",
                         {"p": hog.pid})[1]
    assert exit_[0] == signal.SIGKILL and exit_[1] is not None
    seen = rec.query("SELECT count(*), max(rss) FROM processes WHERE boot_id = $b AND pid = $p AND start_time = $s "
                     "AND ts <= $t", {"b": boot, "p": hog.pid, "s": exit_[1], "t": when})[1]
    assert seen[0][0] >= 1
    (f,) = [f for f in Rp.run(rec)["findings"] if f.kind == "proc.oom_kill" and f.evidence["last_pid"] == hog.pid]
    assert f.severity == "critical" and f.evidence["cgroup"] == "/" + name and f.evidence["cgroup_limit"] == LIMIT
    assert f.evidence["samples"] == seen[0][0] and f.process["start_time"] == exit_[1]
    assert f"in memory cgroup /{name}, limit 64.0 MiB" in f.title
    # The kill is a trigger: the recorder went to the incident preset, saying why.
    fired = rec.query("SELECT trigger, detail FROM triggers WHERE trigger = 'kernel_report'")[1]
    assert any(d.startswith(f"oom_kill of {comm} (pid {hog.pid})") for _, d in fired), fired
    assert rec.query("SELECT count(*) FROM snapshots WHERE incident AND incident_reason IS NOT NULL")[1][0][0] >= 1
