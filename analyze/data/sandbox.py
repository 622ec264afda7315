"""Running user SQL where the kernel itself forbids writing.

DuckDB's ``allowed_directories`` gates reading and writing alike: a connection
that may read a recording may also write into it, should a statement get past
:func:`analyze.data.gate.check_read_only`. So ``procsnap query`` opens its connection and
runs the SQL in a thread that first asks Linux's Landlock security module to
forbid itself, and every thread it starts (DuckDB's workers are started by the
thread that opens the connection), any creation, change, truncation, removal or
renaming of a file or folder anywhere, and any TCP connection. The restriction
cannot be lifted by the thread, ends with it, and leaves the rest of the process
(and a test calling the command in-process) as it was.

Landlock needs Linux 5.13 with the module enabled; where it is missing the SQL gate
alone holds the promise, and :func:`forbid_writes` says so by returning False.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

from analyze.data.interrupt import interrupt_all

_CREATE_RULESET, _RESTRICT_SELF = 444, 446  # the same number on every Linux architecture
_CREATE_RULESET_VERSION = 1
_PR_SET_NO_NEW_PRIVS = 38

# LANDLOCK_ACCESS_FS_*: writing a file, removing, making anything (ABI 1), linking or
# renaming across folders (REFER, ABI 2), truncating (ABI 3). Reading and executing stay allowed.
_FS_WRITE = {1: sum(1 << b for b in (1, 4, 5, 6, 7, 8, 9, 10, 11, 12))}
_FS_WRITE[2] = _FS_WRITE[1] | 1 << 13
_FS_WRITE[3] = _FS_WRITE[2] | 1 << 14
_NET_TCP = (1 << 0) | (1 << 1)  # LANDLOCK_ACCESS_NET_BIND_TCP, _CONNECT_TCP (ABI 4)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64)]


def abi() -> int:
    """The Landlock ABI version the kernel offers (0: none)."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    v = libc.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(v, 0)


def forbid_writes() -> bool:
    """From now on the calling thread, and every thread it starts, can write, create, truncate,
    remove or rename no file or folder and open no TCP connection (files already open stay
    usable). True when the kernel enforces it; False where it cannot (no Landlock)."""
    version = abi()
    if version < 1:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    attr = _RulesetAttr(_FS_WRITE[min(version, 3)], _NET_TCP if version >= 4 else 0)
    size = ctypes.sizeof(_RulesetAttr) if version >= 4 else 8
    fd = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        return False
    try:
        # Required of a thread without CAP_SYS_ADMIN; it only stops set-user-id programs it would
        # execute from gaining privileges, and procsnap query executes none.
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return False
        return libc.syscall(_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) == 0
    finally:
        os.close(fd)


def confined(fn):
    """fn() run in a thread that first forbids itself writing (:func:`forbid_writes`); its result,
    or its exception raised here. Ctrl-C here interrupts its queries and raises KeyboardInterrupt."""
    box: dict = {}
    finished = threading.Event()

    def body():
        try:
            box["enforced"] = forbid_writes()
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread as it is
            box["error"] = e
        finally:
            finished.set()

    threading.Thread(target=body, name="procsnap-sql", daemon=True).start()
    interrupted = False
    # Waited for to its end even after Ctrl-C (its queries are interrupted, so that is soon): a
    # thread left inside DuckDB would be stopped mid-call at the interpreter's exit and abort it.
    # (Thread.join, interrupted by Ctrl-C, takes a running thread for ended: Event.wait does not.)
    while True:
        try:
            if finished.wait(0.1):
                break
        except KeyboardInterrupt:
            interrupted = True
            interrupt_all()
    if interrupted:
        raise KeyboardInterrupt
    if "error" in box:
        raise box["error"]
    return box["value"]
