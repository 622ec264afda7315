"""The real kernel log: a line written to /dev/kmsg reaches kernel_events with its priority and
a wall time within seconds, a process that segfaults has its record parsed with its pid and
the identity (start time) its exit event has, and a
second recorder into the same folder stores nothing twice."""

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from analyze.data.db import Recording
from tests.conftest import run_cli

pytestmark = [pytest.mark.live, pytest.mark.root]


def test_a_line_written_to_dev_kmsg_is_recorded_once(tmp_path):
    if not os.path.exists("/dev/kmsg"):
        pytest.skip("no /dev/kmsg")
    mark = f"procsnap-test-{uuid.uuid4().hex}"
    with open("/dev/kmsg", "w") as f:  # root writes; the kernel stores it with facility user
        f.write(f"<3>{mark}\n")
    written = dt.datetime.now(dt.timezone.utc)
    out = tmp_path / "rec"
    recorder = subprocess.Popen([sys.executable, "-m", "analyze.entry", "record", "-o", str(out), "-i", "0.5",
                                 "-n", "400", "-q"])
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob("snapshots/*/*/*.parquet")):
            assert recorder.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        crash = subprocess.Popen([sys.executable, "-c", "import ctypes; ctypes.string_at(0)"], stderr=subprocess.DEVNULL)
        assert crash.wait() == -11
        time.sleep(1.2)  # a snapshot takes the records and events
    finally:
        recorder.send_signal(signal.SIGINT)
        assert recorder.wait(timeout=60) == 0
    rec = Recording.open([str(out)])
    rows = rec.query("SELECT priority, facility, level, time, kind FROM kernel_events WHERE text = $m", {"m": mark})[1]
    assert len(rows) == 1
    priority, facility, level, when, kind = rows[0]
    assert (priority, facility, level, kind) == (3, 1, "err", None)
    assert abs((when - written).total_seconds()) < 5
    with open("/proc/sys/debug/exception-trace") as f:
        reported = f.read().strip() != "0"  # the kernel reports unhandled segfaults (x86's default)
    if reported:
        seg = rec.query("SELECT comm, address, trap, library, start_time FROM kernel_events "
                        "WHERE kind = 'segfault' AND pid = $p", {"p": crash.pid})[1]
        assert len(seg) == 1 and seg[0][0] == os.path.basename(sys.executable)[:15] and seg[0][1:3] == ("0", "segfault")
        # tied to its identity: the start time its exit event (and any processes row) has
        exits = rec.query("SELECT start_time, signal FROM process_events WHERE kind = 'exit' AND pid = $p",
                          {"p": crash.pid})[1]
        assert seg[0][4] is not None and exits == [(seg[0][4], 11)]
    run_cli("record", "-o", out, "-i", "1", "-n", "1", "-q", check=0)  # resumes: nothing stored twice
    rec = Recording.open([str(out)])
    assert rec.query("SELECT count(*) - count(DISTINCT (boot_id, seq)) FROM kernel_events")[1] == [(0,)]
    assert rec.query("SELECT count(*) FROM kernel_events WHERE text = $m", {"m": mark})[1] == [(1,)]
    assert rec.query("SELECT DISTINCT kernel_log FROM snapshots")[1] == [("read",)]
