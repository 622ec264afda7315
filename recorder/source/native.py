"""Which implementation reads processes and threads: the C module (recorder/source/_native.c) when
it was built and imports, else psutil (and Python for descriptors and sockets).
``PROCSNAP_NATIVE=0`` forces the fallback; ``PROCSNAP_NATIVE=1`` makes a missing C module an error
instead of a silent fallback."""

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
    """'C' or 'psutil': what reads a snapshot's processes and threads."""
    return "C" if native is not None else "psutil"
