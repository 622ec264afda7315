"""Ctrl-C stops every analyzer command promptly: exit 130, one line, no traceback.

Python runs a signal handler only between bytecodes of the main thread, and a DuckDB
query keeps the main thread inside the engine: the Python DuckDB module checks for
signals only between the engine's tasks, so a long task (a join, a scan of a big file)
ran through Ctrl-C to its end. Here the signal's arrival is also written to a pipe
(:func:`signal.set_wakeup_fd`, done by the C-level handler at once, whatever the main
thread is doing) that a watcher thread reads: it interrupts every DuckDB connection
the analyzer opened (:func:`watch`) and keeps interrupting them until the command
has ended, so that no query started meanwhile runs either. The Python handler, which
runs as soon as the main thread is back from the engine (or when the engine asks for
signals), sets :data:`INTERRUPTED`: it tells :func:`analyze.errors.report` that
whatever exception the interrupted engine raised means "interrupted".
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import weakref

INTERRUPTED = threading.Event()
_CONNECTIONS: "weakref.WeakSet" = weakref.WeakSet()


def watch(con) -> None:
    """Interrupt CON's running query on Ctrl-C."""
    _CONNECTIONS.add(con)


def interrupt_all() -> None:
    for con in list(_CONNECTIONS):
        try:
            con.interrupt()
        except Exception:  # noqa: BLE001 - a connection closed meanwhile
            pass


def _on_sigint(signum, frame):
    INTERRUPTED.set()
    interrupt_all()
    raise KeyboardInterrupt


@contextlib.contextmanager
def stoppable():
    """Within: Ctrl-C interrupts the DuckDB queries of this process and raises KeyboardInterrupt.
    Only from the main thread and when SIGINT is not ignored (a background job keeps ignoring it)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    INTERRUPTED.clear()
    r, w = os.pipe()
    os.set_blocking(w, False)
    done = threading.Event()

    def watcher():
        while not done.is_set():
            try:
                data = os.read(r, 512)
            except OSError:
                return
            if not data:
                return
            # Only while our handler is the one in force: `procsnap record` installs its own, and
            # stops on Ctrl-C after the snapshot in hand, with no connection to interrupt.
            if signal.SIGINT in data and signal.getsignal(signal.SIGINT) is _on_sigint:
                while not done.is_set():
                    interrupt_all()
                    done.wait(0.05)

    old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    old_handler = signal.signal(signal.SIGINT, _on_sigint)
    t = threading.Thread(target=watcher, name="procsnap-sigint", daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()
        signal.signal(signal.SIGINT, old_handler)
        signal.set_wakeup_fd(old_fd)
        os.close(w)  # the watcher's read returns b"" and it ends
        t.join(1)
        if not t.is_alive():
            os.close(r)
