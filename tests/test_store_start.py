"""A recorder starts in what an earlier start left behind: a folder half made on a full disk is
finished, not refused for ever; a folder named like a data file does not stop it."""

import os
import subprocess
import sys

import pytest

from analyze.data.db import Recording
from recorder.store.folder import Store, StoreError

from tests.conftest import ROOT
from tests.support.host import date_dir, nobody


def cli(*args):
    return subprocess.run([sys.executable, "-m", "analyze.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def _fill(folder):
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


@pytest.mark.live
@pytest.mark.root
def test_a_first_start_on_a_full_disk_is_finished_at_the_next(tiny_fs):
    out = tiny_fs / "rec"
    _fill(tiny_fs)
    p = cli("snapshot", "-o", out)
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
    assert "No space left on device" in p.stderr and "Traceback" not in p.stderr
    assert set(os.listdir(out)) <= {".lock"}  # no half-written marker
    (tiny_fs / "filler").unlink()
    p = cli("snapshot", "-o", out)
    assert p.returncode == 0, p.stderr
    assert Recording.open([str(out)]).con.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 1


def test_what_an_older_version_left_on_a_full_disk_is_finished(tmp_path):
    out = tmp_path / "rec"
    out.mkdir(mode=0o700)
    (out / ".lock").touch(mode=0o600)
    (out / ".procsnap.json.tmp").touch(mode=0o600)  # empty: the write that failed
    Store(out).close()
    assert sorted(os.listdir(out)) == [".lock", "procsnap.json"]


@pytest.mark.parametrize("kind", [pytest.param("foreign", marks=pytest.mark.root), "link", "other"])  # root: chown
def test_a_half_made_folder_is_only_ours(tmp_path, kind):
    out = tmp_path / "rec"
    out.mkdir(mode=0o700)
    (out / ".lock").touch(mode=0o600)
    tmp = out / ".procsnap.json.tmp"
    if kind == "foreign":
        tmp.touch()
        os.chown(tmp, *nobody())
    elif kind == "link":
        tmp.symlink_to(tmp_path / "elsewhere")
    else:
        tmp.touch()
        (out / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="is not empty and is not a procsnap recording"):
        Store(out)


@pytest.mark.live
def test_a_folder_named_like_a_data_file_is_left_alone_and_said_once(tmp_path):
    out = tmp_path / "rec"
    assert cli("snapshot", "-o", out, "--host", "h").returncode == 0
    d = date_dir(out)
    (d / "123.parquet").mkdir()          # an uncommitted id: the clean-up's to remove, were it a file
    (d / "c5-6.parquet").mkdir()         # a compaction never committed: recovery's to undo
    (date_dir(out, "snapshots") / "124.parquet").mkdir()
    p = cli("record", "-o", out, "--host", "h", "-i", "0.2", "-n", "3", "-q", "--compact-min", "2", "--grace", "0")
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    for n in ("123.parquet", "c5-6.parquet", "124.parquet"):
        assert sum(n + " is a folder" in x for x in lines) == 1, p.stderr
    assert all(x.startswith("procsnap: left alone: ") for x in lines), p.stderr
    assert (d / "123.parquet").is_dir() and (d / "c5-6.parquet").is_dir()


@pytest.mark.parametrize("marker,why", [
    (b"\x00garbage{", "not a procsnap marker ("),
    (b"", "not a procsnap marker (JSONDecodeError)"),
    (b'{"format": "other", "version": 1}', "not a procsnap marker (format is not"),
    (b'{"format": "procsnap-recording", "version": "1"}', "format version '1' is not a number"),
    (b'{"format": "procsnap-recording", "version": 99}', "written by a newer procsnap (format version 99"),
])
@pytest.mark.parametrize("command", ["snapshot", "record"])
@pytest.mark.live
def test_a_garbage_or_future_marker_is_never_appended_to(tmp_path, marker, why, command):
    out = tmp_path / "rec"
    assert cli("snapshot", "-o", out, "--host", "h").returncode == 0
    (out / "procsnap.json").write_bytes(marker)
    before = sorted(p.relative_to(out) for p in out.rglob("*.parquet"))
    args = ("-i", "0.2", "-n", "2", "-q") if command == "record" else ()
    p = cli(command, "-o", out, "--host", "h", *args)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.startswith(f"procsnap: {out / 'procsnap.json'}: {why}") and "refusing to add" in p.stderr
    assert sorted(p.relative_to(out) for p in out.rglob("*.parquet")) == before
    assert (out / "procsnap.json").read_bytes() == marker
