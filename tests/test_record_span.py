"""What `record -d` and `--max-size` promise: a duration covers its whole span (both ends), a
slot skipped at its end is counted in snapshots.skipped, and the folder ends within its budget
as du measures it (allocated blocks, folders included)."""

import subprocess
import sys
import time

import pytest

from analyze.data.db import Recording
from analyze.commands.info import summarize
from recorder import record as R
from recorder.collect.collector import Collector
from recorder.store.compact import Maintenance
from recorder.store.folder import Store

from tests.conftest import ROOT


def _skipped(root):
    rec = Recording.open([str(root)])
    n, skipped = rec.con.execute("SELECT count(*), sum(skipped) FROM snapshots").fetchone()
    return n, skipped, summarize(rec)["completeness"]["skipped_snapshots"]


def test_a_duration_covers_its_whole_span(tmp_path, procfs):
    t0 = time.monotonic()
    with Store(tmp_path / "r") as st:
        res = R.record(st, Collector(procfs=procfs, host="h"), 0.25, duration=0.75)
    took = time.monotonic() - t0
    # Slots at 0, 0.25, 0.5 and 0.75 s: each taken, or skipped and counted.
    assert res.snapshots + res.skipped == 4, res
    assert took >= 0.75
    n, skipped, _ = _skipped(tmp_path / "r")
    assert (n, skipped) == (res.snapshots, res.skipped)


@pytest.mark.live
@pytest.mark.timing
def test_record_cli_duration(tmp_path):
    out = tmp_path / "r"
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "analyze.cli", "record", "-o", str(out), "-i", "0.5", "-d", "1.5s",
                        "-q", "--files-interval", "60"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - t0 >= 1.5
    n, skipped, _ = _skipped(out)
    assert n + skipped == 4, (n, skipped)


class _Slow:
    """The collector, with one snapshot that overruns by SECONDS."""

    def __init__(self, collector, which, seconds):
        self.c, self.which, self.seconds, self.n = collector, which, seconds, 0

    def __getattr__(self, name):
        return getattr(self.c, name)

    def __setattr__(self, name, value):
        if name in ("c", "which", "seconds", "n"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.c, name, value)

    def snapshot(self, tables=None):
        self.n += 1
        s = self.c.snapshot(tables)
        if self.n == self.which:
            time.sleep(self.seconds)
        return s


@pytest.mark.parametrize("compact", [None, 2])
@pytest.mark.parametrize("late", [0.8, 2.0])
@pytest.mark.timing
def test_a_slot_skipped_at_the_end_of_a_duration_is_counted(tmp_path, procfs, compact, late):
    """Slots at 0, 0.5, 1 s; the snapshot at 0.5 overruns past 1: the slot at 1 is skipped,
    and with no snapshot after it, the last one counts it (its own file, or the compacted file
    that took its row). Slots past the duration are not the recording's."""
    root = tmp_path / "r"
    with Store(root) as st:
        res = R.record(st, _Slow(Collector(procfs=procfs, host="h"), 2, late), 0.5, duration=1.0,
                       maintenance=Maintenance(compact_min=compact, grace=3600))
    assert (res.snapshots, res.skipped) == (2, 1), res
    assert _skipped(root) == (2, 1, 1)
    if compact:
        assert list(root.glob("snapshots/*/*/c*.parquet"))


def _du(path):
    """Bytes on disk as du counts them (the folder, its folders and files)."""
    return int(subprocess.run(["du", "-s", "-B1", str(path)], capture_output=True, text=True,
                              check=True).stdout.split()[0])


@pytest.mark.parametrize("stop", [["-n", "10"], ["-d", "2"]])
@pytest.mark.live
def test_max_size_holds_on_disk(tmp_path, stop):
    """Real snapshots of this host on its real file system: the folder ends no bigger than
    --max-size by du's count (small files take whole blocks, folders take blocks too)."""
    # The budget holds several snapshots of this host as it is now (a busy host's snapshot is
    # bigger), never less than 300K.
    one = tmp_path / "one"
    subprocess.run([sys.executable, "-m", "analyze.cli", "record", "-o", str(one), "-n", "1", "-q",
                    "--files-interval", "60"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    budget = max(300 * 1024, 4 * _du(one))
    out = tmp_path / "r"
    p = subprocess.run([sys.executable, "-m", "analyze.cli", "record", "-o", str(out), "-i", "0.2", *stop, "-q",
                        "--files-interval", "60", "--max-size", f"{budget // 1024}K"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    rec = Recording.open([str(out)])
    kept, first = rec.con.execute("SELECT count(*), min(ts) FROM snapshots").fetchone()
    assert kept >= 2  # the budget holds several snapshots: retention, not only "the newest"
    assert _du(out) <= budget, (_du(out), kept)
    with Store(out) as st:
        assert st.size() == _du(out)
