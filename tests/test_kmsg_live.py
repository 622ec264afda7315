"""The real kernel log: a line written to /dev/kmsg reaches kernel_events with its priority and
a wall time within seconds, and a second recorder into the same folder stores nothing twice."""

import datetime as dt
import os
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
    run_cli("record", "-o", out, "-i", "1", "-n", "2", "-q", check=0)
    rows = Recording.open([str(out)]).query(
        "SELECT priority, facility, level, time, kind FROM kernel_events WHERE text = $m", {"m": mark})[1]
    assert len(rows) == 1
    priority, facility, level, when, kind = rows[0]
    assert (priority, facility, level, kind) == (3, 1, "err", None)
    assert abs((when - written).total_seconds()) < 5
    run_cli("record", "-o", out, "-i", "1", "-n", "1", "-q", check=0)  # resumes: nothing stored twice
    rec = Recording.open([str(out)])
    assert rec.query("SELECT count(*) - count(DISTINCT (boot_id, seq)) FROM kernel_events")[1] == [(0,)]
    assert rec.query("SELECT count(*) FROM kernel_events WHERE text = $m", {"m": mark})[1] == [(1,)]
    assert rec.query("SELECT DISTINCT kernel_log FROM snapshots")[1] == [("read",)]
