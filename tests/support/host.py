"""What this host gives the tests that need it: today's date partition, user nobody, and the
procsnap command as installed (the console script beside this Python, else on PATH, else
`python -m analyze.cli`)."""

from __future__ import annotations

import datetime as dt
import os
import pwd
import shutil
import sys
from pathlib import Path

import pytest

TODAY = dt.datetime.now(dt.timezone.utc).date().isoformat()


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
