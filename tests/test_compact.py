"""Compaction, retention and recovery of a recording, in process, over fake snapshots."""

import os

import pyarrow.parquet as pq
import pytest

from analyze.data.db import Recording
from analyze.data.files import recording_files
from recorder.store import compact as C
from recorder.store.folder import Store, select_visible

from tests.support.synthetic import fake_snapshot


def _write(root, n, start=0, procs=3):
    with Store(root) as st:
        for i in range(start, start + n):
            st.write(fake_snapshot(i, [{"pid": p, "utime": i} for p in range(procs, 0, -1)]))


def _rows(root):
    rec = Recording.open([str(root)])
    snaps = rec.con.execute("SELECT snapshot_id FROM snapshots ORDER BY 1").fetchall()
    procs = rec.con.execute("SELECT snapshot_id, pid, utime FROM processes ORDER BY 1, 2").fetchall()
    return [s for (s,) in snaps], procs


def _pdir(root, table="processes"):
    return next(iter((root / table).glob("host=*/date=*")))


def test_select_visible_prefers_the_widest_cover():
    names = ["5.parquet", "6.parquet", "9.parquet", "c5-6.parquet", "c5-8.parquet", "c7-8.parquet",
             ".x.parquet.tmp", "_meta.parquet", "other.parquet", "notes.txt"]
    visible, covered = select_visible(names)
    assert visible == ["9.parquet", "c5-8.parquet", "other.parquet"]
    assert sorted(covered) == [("5.parquet", "c5-8.parquet"), ("6.parquet", "c5-8.parquet"),
                               ("c5-6.parquet", "c5-8.parquet"), ("c7-8.parquet", "c5-8.parquet")]


def test_compaction_keeps_every_row_once_before_and_after_deleting_covered(tmp_path):
    root = tmp_path / "rec"
    _write(root, 7)
    before = _rows(root)
    with Store(root) as st:
        assert C.compact(st, 5) == 7
        assert C.compact(st, 5) == 0  # nothing new to merge
        # Covered small files still on disk (grace): readers read the compacted file only.
        assert len(os.listdir(_pdir(root))) == 8
        assert _rows(root) == before
        assert [os.path.basename(f) for f in recording_files(root, "processes")] == \
            [n for n in os.listdir(_pdir(root)) if n.startswith("c")]
        assert C.delete_covered(st, grace=3600) == 0
        assert C.delete_covered(st, grace=0) == 7 * 2  # processes and snapshots
    assert _rows(root) == before
    (c,) = os.listdir(_pdir(root))
    t = pq.read_table(_pdir(root) / c)
    keys = list(zip(t.column("pid").to_pylist(), t.column("snapshot_id").to_pylist()))
    assert keys == sorted(keys)  # by entity then time (run-length encodings store what did not change once)
    # New small files after the compacted range are read alongside it; a second compaction
    # makes a second range that does not overlap the first.
    _write(root, 5, start=7)
    with Store(root) as st:
        assert C.compact(st, 5) == 5
        C.delete_covered(st, grace=0)
    assert _rows(root)[0] == before[0] + _rows(root)[0][7:]
    assert len(_rows(root)[0]) == 12
    assert sorted(os.listdir(_pdir(root, "snapshots")))[0] == c


def test_interrupted_compaction_is_finished_on_open(tmp_path, monkeypatch):
    root = tmp_path / "rec"
    _write(root, 6)
    before = _rows(root)
    real = C._merge

    def die_on_snapshots(store, table, files, final, damaged=None):
        if table == "snapshots":
            raise KeyboardInterrupt  # the recorder killed between two tables
        real(store, table, files, final, damaged)

    monkeypatch.setattr(C, "_merge", die_on_snapshots)
    with Store(root) as st, pytest.raises(KeyboardInterrupt):
        C.compact(st, 3)
    assert any(n.startswith("c") for n in os.listdir(_pdir(root)))
    assert not any(n.startswith("c") for n in os.listdir(_pdir(root, "snapshots")))
    assert _rows(root) == before  # readers already see each row once
    monkeypatch.setattr(C, "_merge", real)
    with Store(root) as st:
        C.recover(st)
        C.delete_covered(st, grace=0)
    assert [n[0] for n in os.listdir(_pdir(root, "snapshots"))] == ["c"]
    assert _rows(root) == before


def test_interrupted_retention_is_finished_on_open(tmp_path):
    root = tmp_path / "rec"
    _write(root, 4)
    with Store(root) as st:
        C.compact(st, 4)
        C.delete_covered(st, grace=0)
    _write(root, 1, start=4)
    with Store(root) as st:
        # Killed after uncommitting the compacted range, before deleting its data.
        (c,) = [n for n in os.listdir(_pdir(root, "snapshots")) if n.startswith("c")]
        (_pdir(root, "snapshots") / c).unlink()
    snaps, procs = _rows(root)
    assert len(snaps) == 1 and {p[0] for p in procs} == set(snaps)  # the semi-join hides the rest
    with Store(root) as st:
        C.recover(st)
    assert not any(n.startswith("c") for n in os.listdir(_pdir(root)))
    assert _rows(root) == (snaps, procs)


def test_retention_by_size_and_age_drops_oldest_first_and_keeps_the_newest(tmp_path):
    root = tmp_path / "rec"
    _write(root, 10)
    all_snaps, _ = _rows(root)
    with Store(root) as st:
        one = sum(f.stat().st_blocks * 512 for f in root.rglob("*.parquet")) // 10  # on disk, as size() counts
        budget = st.size() - 3 * one
        dropped = C.retain(st, keep=None, max_size=budget)
        assert dropped >= 3
        assert st.size() <= budget
        assert st.size() > budget - 2 * one  # no more than needed (one snapshot's worth of slack)
    snaps, procs = _rows(root)
    assert snaps == all_snaps[dropped:]
    assert {p[0] for p in procs} == set(snaps)
    # Data files exist only for committed snapshots.
    ids = {int(f.stem) for f in root.glob("processes/*/*/*.parquet")}
    assert ids == set(snaps)
    # Age: fake snapshots are from 2026-11-28 03:00 + 10 s steps; keep 1 s of history "now" at the
    # last one + 15 s: everything but the newest goes, the newest is always kept.
    last_s = all_snaps[-1] / 1e6
    with Store(root) as st:
        C.retain(st, keep=1, max_size=None, now=lambda: last_s + 15)
    assert _rows(root)[0] == all_snaps[-1:]


def test_retention_removes_a_compacted_range_whole(tmp_path):
    root = tmp_path / "rec"
    _write(root, 6)
    _write(root, 2, start=6)
    with Store(root) as st:
        assert C.compact(st, 6) == 8
    _write(root, 2, start=8)
    all_snaps, _ = _rows(root)
    with Store(root) as st:
        C.delete_covered(st, grace=0)
        assert C.retain(st, keep=None, max_size=1) == 8 + 1  # the compacted range, then one small
    assert _rows(root)[0] == all_snaps[-1:]
    assert not list(root.glob("*/*/*/c*.parquet"))


def test_remove_uncommitted_keeps_data_committed_by_a_compacted_snapshots_file(tmp_path):
    root = tmp_path / "rec"
    _write(root, 4)
    with Store(root) as st:
        C.compact(st, 4)
    for f in _pdir(root, "snapshots").glob("[0-9]*.parquet"):
        f.unlink()  # as if their grace ran out but the data's had not yet
    (_pdir(root) / "123.parquet").write_bytes(b"never committed")
    Store(root).close()  # opening cleans up
    assert not (_pdir(root) / "123.parquet").exists()
    assert len(list(_pdir(root).glob("[0-9]*.parquet"))) == 4


def test_compaction_sorts_by_entity_a_pid_range_at_a_time(tmp_path, monkeypatch):
    """Many pids, several row groups (a pid range each, cut so that a row group stays small):
    every row comes out once, sorted by (pid, start_time, snapshot_id), and each row group holds
    a pid range of its own, which a reader of one pid can skip to."""
    monkeypatch.setattr(C, "ROW_GROUP_BYTES", 1)  # the smallest row groups: 1024 rows
    root = tmp_path / "rec"
    _write(root, 6, procs=700)
    before = _rows(root)
    with Store(root) as st:
        assert C.compact(st, 6) == 6
        C.delete_covered(st, grace=0)
    assert _rows(root) == before
    (c,) = os.listdir(_pdir(root))
    f = pq.ParquetFile(_pdir(root) / c)
    assert f.metadata.num_rows == 6 * 700 and f.metadata.num_row_groups >= 4
    t = f.read()
    keys = list(zip(t.column("pid").to_pylist(), t.column("snapshot_id").to_pylist()))
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    ranges = []
    for i in range(f.metadata.num_row_groups):
        st = f.metadata.row_group(i).column(t.schema.get_field_index("pid")).statistics
        ranges.append((st.min, st.max))
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))  # disjoint pid ranges, in order


def test_a_damaged_small_file_is_left_out_not_a_stop(tmp_path):
    """A small file that no longer reads (a disk error, a truncation) must not stop compaction,
    and with it retention, for the rest of the recorder's life: it is left out of the compacted
    file, renamed *.damaged (kept, no longer read), and named in the result."""
    root = tmp_path / "rec"
    _write(root, 6)
    victim = sorted(p for p in os.listdir(_pdir(root)) if p.endswith(".parquet"))[2]
    path = _pdir(root) / victim
    path.write_bytes(path.read_bytes()[:40])  # truncated
    with Store(root) as st:
        res = C.maintain(st, C.Maintenance(compact_min=6, grace=0))
    assert res.compacted == 6
    assert [os.path.basename(p) for p, _ in res.damaged] == [victim] and res.damaged[0][1]
    names = os.listdir(_pdir(root))
    assert victim + C.DAMAGED_SUFFIX in names and victim not in names
    snaps, procs = _rows(root)
    assert len(snaps) == 6 and len(procs) == 5 * 3  # the other snapshots' rows, once each


# The compaction child, killed after its first table is written (a compacted data file and
# a temporary file on disk, the range not committed): what the OOM killer or an operator does.
_KILLED_CHILD = """
import os, signal, sys
from recorder.store import compact as C
real, done = C._merge, []
def merge(store, table, files, final, damaged=None):
    if done:
        fd = os.open(str(final.parent / ("." + final.name + ".dead.tmp")), os.O_CREAT | os.O_WRONLY, 0o600)
        os.write(fd, b"half a file")
        os.kill(os.getpid(), signal.SIGKILL)
    done.append(table)
    real(store, table, files, final, damaged)
C._merge = merge
sys.exit(C.main(sys.argv[1:]))
"""


def test_a_killed_compaction_child_leaves_the_recording_whole_and_is_resumed(tmp_path, monkeypatch):
    """The recorder compacts in a short-lived child: killed midway, the recorder goes on, the
    recording reads as before (each row once), and the next pass finishes the range and removes
    the child's temporary file."""
    import sys
    root = tmp_path / "rec"
    _write(root, 6)
    before = _rows(root)
    m = C.Maintenance(compact_min=6, grace=0)
    monkeypatch.setattr(C, "CHILD", [sys.executable, "-c", _KILLED_CHILD])
    with Store(root) as st:
        res = C.maintain(st, m)
        assert res.killed and "SIGKILL" in res.killed and res.compacted == 0
        assert m.resume
        assert any(n.startswith("c") for d in root.glob("*/host=*/date=*") for n in os.listdir(d))
        assert list(root.rglob(".*.tmp"))
        assert _rows(root) == before
        monkeypatch.setattr(C, "CHILD", [sys.executable, "-m", "recorder.store.compact"])
        res = C.maintain(st, m)
        assert res.killed is None and not m.resume
    assert not list(root.rglob(".*.tmp"))
    assert [n[0] for n in os.listdir(_pdir(root, "snapshots"))] == ["c"]
    assert [n[0] for n in os.listdir(_pdir(root))] == ["c"]
    assert _rows(root) == before


def test_compaction_runs_outside_the_recorder(tmp_path, monkeypatch):
    """maintain() never compacts in the recorder's own process (its memory would stay resident)."""
    root = tmp_path / "rec"
    _write(root, 6)

    def not_here(*a, **k):
        raise AssertionError("compacted in the recorder's process")

    monkeypatch.setattr(C, "compact", not_here)
    monkeypatch.setattr(C, "compact_range", not_here)
    with Store(root) as st:
        assert C.maintain(st, C.Maintenance(compact_min=6, grace=0)).compacted == 6



def test_the_compaction_child_holds_the_writer_lock(tmp_path, monkeypatch):
    """A recorder killed while its compaction child runs: no new recorder starts on the folder
    until the child is done (two writers would race). The child holds the lock's descriptor."""
    import sys
    root = tmp_path / "rec"
    _write(root, 6)
    held = tmp_path / "held"
    script = ("import fcntl, os, sys\n"
              "from recorder.store import compact as C\n"
              "for fd in map(int, os.listdir('/proc/self/fd')):\n"
              "    try:\n"
              "        if os.readlink(f'/proc/self/fd/{fd}').endswith('/.lock'):\n"
              "            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"  # ours already: granted
              f"            open({str(held)!r}, 'w').close()\n"
              "    except OSError:\n"
              "        pass\n"
              "sys.exit(C.main(sys.argv[1:]))\n")
    monkeypatch.setattr(C, "CHILD", [sys.executable, "-c", script])
    with Store(root) as st:
        assert C.maintain(st, C.Maintenance(compact_min=6, grace=0)).compacted == 6
    assert held.exists()
