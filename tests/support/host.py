"""What this host gives the tests that need it: today's date partition, user nobody, a user of a
test's own, and the procsnap command as installed (the console script beside this Python, else on PATH, else
`python -m analyze.cli`)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

def today() -> str:
    """The UTC date a snapshot taken now is filed under (asked when a test runs, not when the
    tests are collected: a run may cross midnight)."""
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def date_dir(rec, table: str = "processes", host: str = "h"):
    """The one date folder of TABLE for HOST in the recording REC (a single snapshot's)."""
    (d,) = (rec / table / f"host={host}").glob("date=*")
    return d


def nobody() -> tuple[int, int]:
    """User nobody's (uid, gid); skips the test where there is no such user."""
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    return pw.pw_uid, pw.pw_gid


def procsnap_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("procsnap")
    if exe.is_file() and os.access(exe, os.X_OK):
        return [str(exe)]
    found = shutil.which("procsnap")
    if found:
        return [found]
    return [sys.executable, "-m", "analyze.cli"]


@contextlib.contextmanager
def dedicated_user():
    """A system user made for one test alone (useradd; needs root), so that selecting processes
    by user finds exactly the ones the test starts as it, whatever else runs here as nobody or
    anyone else. Yields its pwd entry; the user and its group are removed afterwards (end its
    processes first)."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("needs root and useradd to make a user of its own")
    name = f"psnap-t{os.getpid()}"
    p = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", name], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"useradd {name} failed: {p.stderr.strip()}")
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True)
