"""The record loop in process over a fake /proc: cadences, the incident preset,
a full disk, and the recorder's own columns."""

import errno
import io
import os
import signal

import pytest

from analyze.data.db import Recording
from recorder import record as R
from recorder.collect.collector import Collector
from recorder.store.compact import Maintenance
from recorder.store.folder import Store


def _snaps(root):
    rec = Recording.open([str(root)])
    return rec.con.execute("SELECT snapshot_id, open_files_seen, sockets_seen, processes_seen, incident, "
                           "dropped, write_ms_prev, maintenance_ms, interval_s FROM snapshots ORDER BY 1").fetchall()


def test_descriptors_only_on_their_own_cadence(tmp_path, procfs):
    with Store(tmp_path / "r") as st:
        res = R.record(st, Collector(procfs=procfs, host="h"), 0.02, count=4, files_interval=3600)
    assert res.snapshots == 4
    rows = _snaps(tmp_path / "r")
    assert [r[1] is not None for r in rows] == [True, False, False, False]
    assert [r[2] is not None for r in rows] == [True, False, False, False]
    assert all(r[3] == 3 for r in rows)  # processes on every snapshot
    assert rows[0][6] is None and all(r[6] is not None for r in rows[1:])  # write time of the previous
    assert all(r[5] == 0 and r[4] is False for r in rows)
    # lsof answers from the latest snapshot that has descriptors, ps from the latest.
    rec = Recording.open([str(tmp_path / "r")])
    assert rec.moment(None, "open_files")[0].snapshot_id == rows[0][0]
    assert rec.moment(None)[0].snapshot_id == rows[-1][0]


def test_without_files_interval_every_snapshot_takes_everything(tmp_path, procfs):
    with Store(tmp_path / "r") as st:
        R.record(st, Collector(procfs=procfs, host="h"), 0.02, count=3)
    assert all(r[1] is not None for r in _snaps(tmp_path / "r"))


def test_incident_file_and_sighup(tmp_path, procfs, monkeypatch):
    monkeypatch.setattr(R, "INCIDENT_INTERVAL", 0.01)
    root = tmp_path / "r"
    err = io.StringIO()

    def progress(res, elapsed):
        if res.snapshots == 2:
            os.kill(os.getpid(), signal.SIGHUP)  # ends the incident the file started
        if res.snapshots == 3:
            (root / "incident").write_text("1h\n")  # starts another one

    with Store(root) as st:
        (root / "incident").write_text("")  # no duration: the default length
        res = R.record(st, Collector(procfs=procfs, host="h"), 0.02, count=5, files_interval=3600,
                       progress=progress, err=err)
    rows = _snaps(root)
    assert [r[4] for r in rows] == [True, True, False, True, True]
    # Descriptors on every incident snapshot; the normal cadence counts from the last ones taken.
    assert [r[1] is not None for r in rows] == [True, True, False, True, True]
    assert [r[8] for r in rows] == [0.01, 0.01, 0.02, 0.01, 0.01]
    assert not (root / "incident").exists()
    assert res.incidents == 2
    assert "SIGHUP: incident preset ended" in err.getvalue()
    assert "incident preset for 3600s" in err.getvalue()
    assert "incident preset for 600s" in err.getvalue()


@pytest.mark.parametrize("text,length", [("1h30m\n", "5400s"), ("90s", "90s"), ("1.5h", "5400s"), ("45", "45s")])
def test_the_incident_file_takes_the_options_duration_grammar(tmp_path, procfs, text, length):
    """`echo 1h30m > DIR/incident` means what `--incident 1h30m` means (it meant 10 minutes)."""
    root = tmp_path / "r"
    err = io.StringIO()
    with Store(root) as st:
        (root / "incident").write_text(text)
        res = R.record(st, Collector(procfs=procfs, host="h"), 0.02, count=1, err=err)
    assert res.incidents == 1
    assert f"incident preset for {length}" in err.getvalue()


@pytest.mark.parametrize("text", ["junk", "10x", "-5m", "0", "1h 30m"])
def test_a_bad_incident_file_is_said_and_ignored(tmp_path, procfs, text):
    """Not a silent default: one line naming the file and the value, and no incident."""
    root = tmp_path / "r"
    err = io.StringIO()
    with Store(root) as st:
        (root / "incident").write_text(text + "\n")
        res = R.record(st, Collector(procfs=procfs, host="h"), 0.02, count=1, err=err)
    assert res.incidents == 0
    assert not (root / "incident").exists()
    (line,) = [ln for ln in err.getvalue().splitlines() if "incident" in ln]
    assert "bad incident duration" in line and repr(text) in line and line.endswith("file ignored")
    assert [r[4] for r in _snaps(root)] == [False]


def test_a_full_disk_drops_snapshots_says_so_once_and_resumes(tmp_path, procfs, monkeypatch):
    root = tmp_path / "r"
    st = Store(root)
    real = st._write_table
    calls = {"n": 0}
    full = {"on": False}

    def write_table(final, table):
        calls["n"] += 1
        if full["on"] and "processes" in str(final):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(final, table)

    st._write_table = write_table

    def progress(res, elapsed):
        n = res.snapshots + res.dropped
        full["on"] = 2 <= n < 5  # snapshots 3, 4, 5 fail

    err = io.StringIO()
    res = R.record(st, Collector(procfs=procfs, host="h"), 0.01, count=7, files_interval=3600,
                   progress=progress, err=err)
    st.close()
    assert (res.snapshots, res.dropped) == (4, 3)
    assert err.getvalue().count("dropping snapshots until space returns") == 1
    assert err.getvalue().count("space returned") == 1
    rows = _snaps(root)
    assert [r[5] for r in rows] == [0, 0, 3, 0]
    # Nothing of a dropped snapshot is left: every data file belongs to a committed snapshot.
    ids = {r[0] for r in rows}
    for f in root.glob("*/*/*/*.parquet"):
        assert int(f.stem) in ids, f


def test_maintenance_between_snapshots_compacts_and_retains(tmp_path, procfs):
    root = tmp_path / "r"
    with Store(root) as st:
        res = R.record(st, Collector(procfs=procfs, host="h"), 0.01, count=12, files_interval=0.03,
                       maintenance=Maintenance(compact_min=4, grace=0))
    assert res.compacted >= 8
    rows = _snaps(root)
    assert len(rows) == len({r[0] for r in rows}) == 12
    assert any(r[7] > 0 for r in rows)
    assert list(root.glob("processes/*/*/c*.parquet"))
    rec = Recording.open([str(root)])
    dup = rec.con.execute("SELECT count(*) FROM (SELECT snapshot_id, pid FROM processes "
                          "GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
    assert dup == 0
    assert rec.con.execute("SELECT count(DISTINCT snapshot_id) FROM processes").fetchone()[0] == 12


def test_a_failing_or_killed_compaction_child_is_one_line_and_recording_goes_on(tmp_path, procfs, monkeypatch,
                                                                               capfd):
    """The compaction child's failure is one line in the recorder's log (never its traceback);
    the recorder keeps recording. A killed child is said per pass and retried."""
    import sys

    from recorder.store import compact as C
    for child, says, stops in ((["-c", "raise ValueError('boom')"],
                                "compaction child exited with status 1: ValueError: boom", True),
                               (["-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"],
                                "compaction child killed by SIGKILL", False)):
        monkeypatch.setattr(C, "CHILD", [sys.executable] + child)
        root = tmp_path / ("r" + str(stops))
        err = io.StringIO()
        with Store(root) as st:
            res = R.record(st, Collector(procfs=procfs, host="h"), 0.01, count=6,
                           maintenance=Maintenance(compact_min=2, grace=0), err=err)
        assert res.snapshots == 6 and res.compacted == 0
        lines = err.getvalue().splitlines()
        assert lines and all(says in x for x in lines), lines
        assert len(lines) == (1 if stops else 4)  # passes after snapshots 2..5 are due
        assert "Traceback" not in err.getvalue() + capfd.readouterr().err
        assert len({r[0] for r in _snaps(root)}) == 6


def test_snapshot_ids_keep_increasing_when_the_clock_steps_back(tmp_path, procfs, monkeypatch):
    import datetime as dt

    from recorder.collect import collector as collect
    real = collect.dt.datetime
    steps = iter([0, 1, -5, 2])

    class SteppedClock(real):
        @classmethod
        def now(cls, tz=None):
            return real(2026, 11, 28, 3, 0, 10, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=next(steps))

    monkeypatch.setattr(collect.dt, "datetime", SteppedClock)
    with Store(tmp_path / "r") as st:
        R.record(st, Collector(procfs=procfs, host="h"), 0.01, count=4, files_interval=3600)
    monkeypatch.undo()
    rec = Recording.open([str(tmp_path / "r")])
    order = [r[0] for r in rec.con.execute("SELECT snapshot_id FROM snapshots ORDER BY snapshot_id").fetchall()]
    stepped = rec.con.execute("SELECT snapshot_id, epoch_us(ts) FROM snapshots ORDER BY snapshot_id").fetchall()
    assert stepped[2][0] == stepped[1][0] + 1 and stepped[2][1] < stepped[1][1]  # id after, ts true
    assert len(set(order)) == 4
    procs = rec.con.execute("SELECT DISTINCT snapshot_id FROM processes ORDER BY 1").fetchall()
    assert [r[0] for r in procs] == order
