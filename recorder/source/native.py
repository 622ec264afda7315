"""Which implementation of the hot /proc loops runs: the C module (recorder/source/_native.c) when it
was built and imports, else the Python loops. ``PROCSNAP_NATIVE=0`` forces the Python loops (the
tests compare the two); ``PROCSNAP_NATIVE=1`` makes a missing C module an error instead of a
silent fallback."""

from __future__ import annotations

import os


def load():
    want = os.environ.get("PROCSNAP_NATIVE", "")
    if want == "0":
        return None
    try:
        from recorder.source import _native
    except ImportError:
        if want == "1":
            raise
        return None
    return _native


native = load()


def describe() -> str:
    """'C' or 'Python': what a snapshot's hot loops run in (recorded in the snapshots table)."""
    return "C" if native is not None else "Python"
