"""The report's note on fields the kernel refused to the recorder: what was
refused, of which processes, and why; root is the remedy only when the
recorder did not run as root. Recorded for real: as root without
CAP_SYS_PTRACE (what a container gives root: processes holding capabilities
the recorder lacks keep their exe, io, fd from it) and as user nobody."""

import ctypes
import os
import shutil
import subprocess
import sys

import pytest

from analyze.commands import report as R
from analyze.data.db import Recording

from tests.conftest import ROOT

pytestmark = [pytest.mark.live, pytest.mark.root]


def notes_of(rec_dir):
    res = R.run(Recording.open([str(rec_dir)]))
    return [n for n in res["notes"] if "refused" in n], res


@pytest.fixture
def sleeper():
    p = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(120)"],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "up"
    yield p.pid
    p.kill()
    p.wait()


def test_root_without_ptrace_is_not_told_to_run_as_root(tmp_path, sleeper):
    if not shutil.which("setpriv"):
        pytest.skip("no setpriv")
    rec = tmp_path / "rec"
    p = subprocess.run(["setpriv", "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace", sys.executable, "-m",
                        "analyze.cli", "snapshot", "-o", str(rec), "-q"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    r = Recording.open([str(rec)])
    (denied,), = r.execute(f"SELECT denied FROM processes WHERE pid = {sleeper}")[1]
    assert denied and "exe" in denied.split(","), "root without CAP_SYS_PTRACE is refused a full-capability process"
    notes, _ = notes_of(rec)
    assert len(notes) == 1, notes
    note = notes[0]
    assert "run the recorder as root" not in note
    assert "the recorder ran as root" in note and "CAP_SYS_PTRACE" in note
    (n,), = r.execute("SELECT count(DISTINCT pid) FROM processes p JOIN snapshots s USING (snapshot_id) "
                      "WHERE denied IS NOT NULL AND p.pid <> s.recorder_pid")[1]
    assert f"of {n} process(es)" in note and "exe " in note


def record_as_nobody(rec):
    """One snapshot taken by a child that became nobody after its imports (the interpreter
    lives where nobody may not read)."""
    from analyze.commands import snapshot
    # a first snapshot as root imports everything a snapshot needs, before changing user
    snapshot.take(str(rec.parent / "warm-up"), quiet=True)
    shutil.rmtree(rec.parent / "warm-up")
    os.chown(rec.parent, 65534, 65534)
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: its own /proc files readable again
            snapshot.take(str(rec), quiet=True)
            code = 0
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.fixture
def nobody_dir():
    import tempfile
    from pathlib import Path
    d = Path(tempfile.mkdtemp(prefix="procsnap-denied-"))  # pytest's own are root's, closed to nobody
    yield d
    shutil.rmtree(d)


def test_nobody_is_told_to_run_as_root(nobody_dir, sleeper):
    rec = nobody_dir / "rec"
    record_as_nobody(rec)
    r = Recording.open([str(rec)])
    (uid,), = r.execute("SELECT p.uid FROM processes p JOIN snapshots s USING (snapshot_id) "
                        "WHERE p.pid = s.recorder_pid")[1]
    assert uid == 65534
    notes, _ = notes_of(rec)
    assert len(notes) == 1, notes
    note = notes[0]
    assert "ran as uid 65534 (nobody)" in note and "run the recorder as root" in note
    assert "processes of other users (" in note and "(pid 1)" in note  # pid 1 is root's, listed first


def test_who_recorded_unknown_is_said(tmp_path):
    # an older recording, or one whose recorder row is missing: the recorder's pid has no process row
    from recorder.collect.tables import to_table as _to_table
    from tests.support.synthetic import N, proc, snapshot, system_row, write
    snaps = []
    for i in range(N):
        s = snapshot(i, {"processes": [proc(10, i, "secret", denied="exe,io"), proc(11, i, "open")],
                         "system": [system_row(i)]})
        row = s.tables["snapshots"].to_pylist()[0]
        row["processes_denied"] = 1
        s.tables["snapshots"] = _to_table("snapshots", [row], {})
        snaps.append(s)
    rec = write(tmp_path / "rec", snaps)
    notes = [n for n in R.run(rec)["notes"] if "refused" in n]
    assert len(notes) == 1 and "exe 1, io 1" in notes[0] and f"in {N} rows" in notes[0]
    assert "who ran the recorder is not in the recording" in notes[0] and "secret (pid 10)" in notes[0]
