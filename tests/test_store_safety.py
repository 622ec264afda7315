"""A root recorder in a folder someone else can shape: it refuses folders another user owns or
may write, never follows a link planted in its recording, never removes what it did not write,
and stops when its folder is swapped under it. The hostile steps run as user nobody (a forked
child that drops to it) or are links made by root and handed to nobody with lchown."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder.store import compact as C
from recorder.store.folder import Store, StoreError, UnsafeFolder

from tests.conftest import ROOT
from tests.support.host import date_dir, nobody, today
from tests.support.synthetic import fake_snapshot

pytestmark = pytest.mark.root


def as_nobody(fn, *args):
    """Run fn(*args) in a child that is user nobody; fails the test if it raised."""
    uid, gid = nobody()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            fn(*args)
            code = 0
        except BaseException as e:  # noqa: BLE001
            os.write(2, f"as nobody: {e!r}\n".encode())
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the step as nobody failed"


@pytest.fixture
def shared():
    """A folder under /tmp that nobody created (as a user's own scratch folder is)."""
    import secrets
    d = Path("/tmp", f"procsnap-shared-{secrets.token_hex(6)}")
    as_nobody(os.mkdir, d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def victim(tmp_path):
    """A root-owned file the hostile user wants overwritten or removed."""
    v = tmp_path / "victim"
    v.write_text("precious\n")
    v.chmod(0o600)
    return v


def snapshot_cli(out, *extra):
    return subprocess.run([sys.executable, "-m", "analyze.cli", "snapshot", "-o", str(out), "--host", "h", *extra],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def _one_line(p):
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    return p.stderr


# --------------------------------------------------------------------------
# Refused folders

@pytest.mark.live
def test_a_folder_another_user_created_is_refused(shared):
    for target in (shared, shared / "rec", shared / "a" / "rec"):
        p = snapshot_cli(target)
        assert p.returncode == 1, p
        line = _one_line(p)
        assert "owned by nobody" in line and "--allow-shared-folder" in line, line
    assert os.listdir(shared) == []  # nothing was created in it
    p = subprocess.run([sys.executable, "-m", "analyze.cli", "record", "-o", str(shared / "rec"), "-n", "1", "-q"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 1 and "owned by nobody" in _one_line(p)


@pytest.mark.live
def test_a_folder_others_may_write_is_refused(tmp_path):
    ww = tmp_path / "ww"
    ww.mkdir()
    ww.chmod(0o777)  # root's, but anyone may rename or plant in it; not sticky
    for target in (ww, ww / "rec"):
        p = snapshot_cli(target)
        assert p.returncode == 1 and "writable by group and others (mode 777)" in _one_line(p), p
    assert os.listdir(ww) == []
    g = tmp_path / "g"
    g.mkdir()
    g.chmod(0o770)
    p = snapshot_cli(g)
    assert p.returncode == 1 and "writable by its group" in _one_line(p)
    # A sticky world-writable folder above (as /tmp is) is fine: only an entry's owner may move it.
    st = tmp_path / "sticky"
    st.mkdir()
    st.chmod(0o1777)
    assert snapshot_cli(st / "rec").returncode == 0


@pytest.mark.live
def test_the_flag_records_into_a_shared_folder(shared):
    p = snapshot_cli(shared / "rec", "--allow-shared-folder")
    assert p.returncode == 0, p.stderr
    assert list((shared / "rec").glob("snapshots/host=h/date=*/*.parquet"))
    # The installed command's own parser for `snapshot` (no framework) knows the flag too.
    entry = "import sys; from analyze.entry import main; sys.exit(main(sys.argv[1:]))"
    for flag, code in (([], 1), (["--allow-shared-folder"], 0)):
        p = subprocess.run([sys.executable, "-c", entry, "snapshot", *flag, "-o", str(shared / "rec2")],
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert p.returncode == code, p.stderr
    assert len(list((shared / "rec2").glob("snapshots/*/date=*/*.parquet"))) == 1


@pytest.mark.live
def test_a_link_to_the_folder_planted_by_another_user_is_refused(shared, tmp_path):
    target = tmp_path / "roots"
    target.mkdir(mode=0o700)
    as_nobody(os.symlink, str(target), str(shared / "rec"))
    sticky = tmp_path / "sticky"  # a safe place above, so that only the link's owner is in question
    sticky.mkdir()
    sticky.chmod(0o1777)
    link = sticky / "rec"
    os.symlink(target, link)
    os.lchown(link, *nobody())
    p = snapshot_cli(link)
    assert p.returncode == 1 and "is a link owned by nobody" in _one_line(p)
    assert os.listdir(target) == []
    # --allow-shared-folder lifts the owner and mode checks of folders, not this one: the link
    # alone would decide where root writes
    p = snapshot_cli(link, "--allow-shared-folder")
    assert p.returncode == 1 and "is a link owned by nobody" in _one_line(p)
    assert os.listdir(target) == []
    os.lchown(link, 0, 0)  # the same link made by root is followed
    assert snapshot_cli(link).returncode == 0
    assert (target / "procsnap.json").is_file()


# --------------------------------------------------------------------------
# Links planted in the recording are never followed, even with the flag

@pytest.mark.live
def test_a_planted_marker_temporary_link_leaves_its_target_intact(shared, victim):
    def plant():
        os.mkdir(shared / "rec")
        os.mkdir(shared / "rec" / "snapshots")  # looks like a recording without its marker
        os.symlink(victim, shared / "rec" / ".procsnap.json.tmp")

    as_nobody(plant)
    p = snapshot_cli(shared / "rec")
    assert p.returncode == 1 and "owned by nobody" in _one_line(p)
    p = snapshot_cli(shared / "rec", "--allow-shared-folder")
    assert p.returncode == 0, p.stderr
    assert victim.read_text() == "precious\n" and oct(victim.stat().st_mode & 0o777) == "0o600"
    marker = shared / "rec" / "procsnap.json"
    assert marker.is_file() and not marker.is_symlink() and marker.stat().st_uid == 0
    # The link is not the recorder's: left where it is, and said so once.
    assert (shared / "rec" / ".procsnap.json.tmp").is_symlink()
    assert p.stderr.count("left alone") == 1 and ".procsnap.json.tmp is a link" in p.stderr


@pytest.mark.live
def test_a_planted_marker_link_is_never_written_through(shared, victim):
    def plant():
        os.makedirs(shared / "rec" / "snapshots")
        os.symlink(victim, shared / "rec" / "procsnap.json")

    as_nobody(plant)
    assert snapshot_cli(shared / "rec", "--allow-shared-folder").returncode == 0
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("where", ["processes", "processes/host=h/date=TODAY", "processes/host=h"])
@pytest.mark.live
def test_linked_table_host_and_date_folders_are_refused(shared, tmp_path, where):
    evil = shared / "evil"
    where = where.replace("TODAY", today())

    def plant():
        os.mkdir(evil)
        os.chmod(evil, 0o777)
        link = shared / "rec" / where
        os.makedirs(shared / "rec" / "snapshots")  # a recording, to the recorder's eyes
        os.makedirs(link.parent, exist_ok=True)
        os.symlink(evil, link)

    as_nobody(plant)
    p = snapshot_cli(shared / "rec", "--allow-shared-folder")
    assert p.returncode == 1, p
    line = _one_line(p)
    assert f"rec/{where} is a link or not a folder: procsnap never follows links" in line, line
    assert os.listdir(evil) == []
    # The same link in a recording of root's own (made by root, handed to nobody) is refused too.
    rec = tmp_path / "rec"
    assert snapshot_cli(rec).returncode == 0
    mine = rec / where
    shutil.rmtree(mine)
    mine.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.symlink(evil, mine)
    os.lchown(mine, *nobody())
    p = snapshot_cli(rec)
    assert p.returncode == 1 and "is a link or not a folder" in _one_line(p)
    assert os.listdir(evil) == []


@pytest.mark.live
def test_a_partition_of_another_user_is_refused(tmp_path):
    rec = tmp_path / "rec"
    assert snapshot_cli(rec).returncode == 0
    d = date_dir(rec)
    os.chown(d, *nobody())
    p = snapshot_cli(rec)
    assert p.returncode == 1 and f"{d.name} is owned by nobody" in _one_line(p)


# --------------------------------------------------------------------------
# Never removes what it did not write

def _write(root, n, start=0):
    with Store(root) as st:
        for i in range(start, start + n):
            st.write(fake_snapshot(i, [{"pid": p, "utime": i} for p in (1, 2, 3)]))


def _pdir(root, table="processes"):
    return next(iter((root / table).glob("host=*/date=*")))


def test_clean_up_leaves_links_foreign_files_and_folders_of_its_naming(tmp_path, victim, capfd):
    root = tmp_path / "rec"
    _write(root, 2)
    d = _pdir(root)
    uid, gid = nobody()
    (d / "100.parquet").symlink_to(victim)          # uncommitted ids: the clean-up's to remove,
    os.lchown(d / "100.parquet", uid, gid)
    (d / "101.parquet").write_bytes(b"someone's")    # were they the recorder's own files
    os.chown(d / "101.parquet", uid, gid)
    (d / "102.parquet").mkdir()
    (d / ".103.parquet.tmp").symlink_to(victim)
    (d / ".104.parquet.tmp").write_bytes(b"mine")   # a temporary file of the recorder's: removed
    Store(root).close()
    Store(root).close()
    assert victim.read_text() == "precious\n"
    assert (d / "100.parquet").is_symlink() and (d / "101.parquet").read_bytes() == b"someone's"
    assert (d / "102.parquet").is_dir() and (d / ".103.parquet.tmp").is_symlink()
    assert not (d / ".104.parquet.tmp").exists()
    err = capfd.readouterr().err
    for n, what in [("100.parquet", "a link"), ("101.parquet", "a file of nobody"), ("102.parquet", "a folder"),
                    (".103.parquet.tmp", "a link")]:
        assert err.count(f"{n} is {what}") == 2, err  # once per recorder (two were opened)


def test_retention_and_compaction_leave_files_they_did_not_write(tmp_path, victim):
    root = tmp_path / "rec"
    _write(root, 6)
    d = _pdir(root)
    names = sorted(n for n in os.listdir(d) if n.endswith(".parquet"))
    uid, gid = nobody()
    os.chown(d / names[0], uid, gid)  # retention's oldest: someone else's file now
    with Store(root) as st:
        assert C.compact(st, 6) == 6
        # A covered small file replaced by a link to a root file, another handed to nobody:
        os.unlink(d / names[1])
        os.symlink(victim, d / names[1])
        os.chown(d / names[2], uid, gid)
        C.delete_covered(st, grace=0)
        left = set(os.listdir(d))
        assert {names[0], names[1], names[2]} <= left and not {names[3], names[4], names[5]} & left
        _write_more(st, 2)
        C.retain(st, keep=None, max_size=1)
    assert victim.read_text() == "precious\n"
    left = set(os.listdir(d))
    assert {names[0], names[1], names[2]} <= left and not any(n.startswith("c") for n in left)


def _write_more(st, n):
    for i in range(100, 100 + n):
        st.write(fake_snapshot(i, [{"pid": 1, "utime": i}]))


@pytest.mark.parametrize("kind", ["hardlink", "symlink", "fifo"])
def test_a_planted_lock_is_refused(tmp_path, victim, kind):
    root = tmp_path / "rec"
    Store(root).close()
    (root / ".lock").unlink()
    {"hardlink": lambda: os.link(victim, root / ".lock"), "symlink": lambda: os.symlink(victim, root / ".lock"),
     "fifo": lambda: os.mkfifo(root / ".lock")}[kind]()
    with pytest.raises(StoreError, match=r"\.lock"):
        Store(root)
    assert victim.read_text() == "precious\n"


def test_the_incident_file_is_never_read_through_a_link(tmp_path, victim):
    from recorder.record import INCIDENT_FILE
    root = tmp_path / "rec"
    with Store(root) as st:
        os.symlink(victim, root / INCIDENT_FILE)
        assert st.take_file(INCIDENT_FILE) is None and not st.has_file(INCIDENT_FILE)
        os.unlink(root / INCIDENT_FILE)
        os.mkfifo(root / INCIDENT_FILE)  # would block a reader for ever
        assert st.take_file(INCIDENT_FILE) is None
        os.unlink(root / INCIDENT_FILE)
        (root / INCIDENT_FILE).write_text("5m\n")
        assert st.take_file(INCIDENT_FILE) == "5m\n" and not (root / INCIDENT_FILE).exists()
    assert victim.read_text() == "precious\n"


# --------------------------------------------------------------------------
# Checked again while recording

def test_a_folder_swapped_for_a_link_stops_the_writer(tmp_path):
    root, elsewhere = tmp_path / "rec", tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    with Store(root) as st:
        st.write(fake_snapshot(0, [{"pid": 1}]))
        root.rename(tmp_path / "moved")
        root.symlink_to(elsewhere)
        with pytest.raises(StoreError, match="no longer names the folder this recorder opened"):
            st.write(fake_snapshot(1, [{"pid": 1}]))
    assert os.listdir(elsewhere) == []
    assert len(list((tmp_path / "moved").glob("snapshots/*/*/*.parquet"))) == 1


def test_a_partition_swapped_while_recording_stops_the_writer(tmp_path):
    root, elsewhere = tmp_path / "rec", tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    with Store(root) as st:
        st.write(fake_snapshot(0, [{"pid": 1}]))
        d = _pdir(root)
        d.rename(d.with_name("date=old"))
        d.symlink_to(elsewhere)
        with pytest.raises(StoreError, match="is a link or not a folder"):
            st.write(fake_snapshot(1, [{"pid": 1}]))
        d.unlink()
        d.mkdir()
        os.chown(d, *nobody())
        with pytest.raises(UnsafeFolder, match="owned by nobody"):
            st.write(fake_snapshot(1, [{"pid": 1}]))
    assert os.listdir(elsewhere) == [] and os.listdir(d) == []
    # Nothing of the refused snapshot was left committed anywhere.
    assert len(list(root.glob("snapshots/*/*/*.parquet"))) == 1


@pytest.mark.live
def test_a_running_recorder_stops_when_its_folder_is_swapped(tmp_path):
    root, elsewhere = tmp_path / "rec", tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    p = subprocess.Popen([sys.executable, "-m", "analyze.cli", "record", "-o", str(root), "-i", "0.3",
                          "--files-interval", "60", "-q"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        while len(list(root.glob("snapshots/*/*/*.parquet"))) < 2:
            assert time.monotonic() < end and p.poll() is None, "no snapshots"
            time.sleep(0.05)
        root.rename(tmp_path / "moved")
        root.symlink_to(elsewhere)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.communicate(timeout=30)
    assert p.returncode == 1 and "no longer names the folder" in err and "Traceback" not in err, err
    assert os.listdir(elsewhere) == []


# --------------------------------------------------------------------------
# Created 0700 whatever the umask

@pytest.mark.live
def test_missing_parent_folders_are_created_0700(tmp_path):
    out = tmp_path / "a" / "b" / "rec"
    p = subprocess.run([sys.executable, "-m", "analyze.cli", "snapshot", "-o", str(out)], cwd=ROOT,
                       capture_output=True, text=True, preexec_fn=lambda: os.umask(0o022), timeout=120)
    assert p.returncode == 0, p.stderr
    made = [tmp_path / "a", tmp_path / "a" / "b", out] + [d for d in out.rglob("*") if d.is_dir()]
    assert len(made) > 3 + 8
    for d in made:
        assert oct(d.stat().st_mode & 0o777) == "0o700", d
    # A umask that takes the owner's own bits away does not either.
    out2 = tmp_path / "c" / "rec"
    p = subprocess.run([sys.executable, "-m", "analyze.cli", "snapshot", "-o", str(out2)], cwd=ROOT,
                       capture_output=True, text=True, preexec_fn=lambda: os.umask(0o277), timeout=120)
    assert p.returncode == 0, p.stderr
    assert oct((tmp_path / "c").stat().st_mode & 0o777) == "0o700"
    assert oct(out2.stat().st_mode & 0o777) == "0o700"
