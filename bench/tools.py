"""Helpers the benchmark scripts share (run.py, events.py): finding procsnap and the
environment it runs in, disk usage, number formats, children that die with the runner."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys


def find_procsnap(explicit: str | None) -> str:
    if explicit:
        return explicit
    beside = os.path.join(os.path.dirname(sys.executable), "procsnap")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("procsnap")
    if not found:
        sys.exit("run.py: procsnap not found; pass --procsnap PATH")
    return found


def pdeathsig_term() -> None:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG: dies with the runner


def procsnap_env(workroot: str, keep: bool = False) -> dict:
    """The environment procsnap runs in: compiled bytecode cached under workroot, as an installed
    package would have it (unless keep: the environment as is)."""
    env = dict(os.environ)
    if not keep:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = os.path.join(workroot, "pycache")
    return env


def procsnap_python(procsnap: str) -> str:
    try:
        with open(procsnap, "rb") as f:
            first = f.readline().decode(errors="replace")
        if first.startswith("#!"):
            return first[2:].strip().split()[0]
    except OSError:
        pass
    return sys.executable


def du_bytes(path: str) -> tuple[int, int]:
    """(apparent bytes, bytes allocated on disk), as `du -sb` and `du -sB1` print them."""
    out = []
    for flag in ("-sb", "-sB1"):
        p = subprocess.run(["du", flag, path], capture_output=True, text=True)
        out.append(int(p.stdout.split()[0]) if p.returncode == 0 else -1)
    return out[0], out[1]


def f3(x) -> str:
    return "–" if x is None or x != x else f"{x:.3f}"


def fsz(b) -> str:
    if b is None or b < 0:
        return "–"
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= div:
            return f"{b / div:.1f} {unit}"
    return f"{b} B"


def emit(text: str, out: str | None) -> None:
    """A bench script's Markdown section: into OUT when given, and on stdout."""
    if out:
        with open(out, "w") as f:
            f.write(text)
    print(text)
