"""Workloads for tests/test_report.py: one role per process.

    python tests/support/reportload.py ROLE TMPDIR [N]

Each role names itself rp-ROLE (prctl), prints "up" once set up, and runs
until killed:

  leaker     every 200 ms: opens a regular file, a deleted file, a pipe, an
             eventfd and a TCP connection its own listener closes at once (so
             it sits in CLOSE_WAIT), starts a thread and grows a bytearray by
             1 MiB
  steady     holds 20 MiB and 10 files, wakes every 200 ms
  sawtooth   cycles of 2 s: maps and touches 20 MiB and opens 30 files, holds
             them 1 s, unmaps and closes them, waits 1 s
  step       1 s after SIGUSR1 (sent once the recording has begun) opens 100
             files and touches 40 MiB once, then steady
  burner     spins on one core
  restarter  leaks 2 files and 2 MiB every 500 ms and exits after 6 s (the
             test restarts it: one identity, several instances; N only
             changes the command line's digits)
  backlog    a TCP listener that never accepts, with 5 connections waiting
"""

from __future__ import annotations

import ctypes
import mmap
import os
import signal
import socket
import sys
import threading
import time

MiB = 1 << 20


def set_name(name: str) -> None:
    ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


def up() -> None:
    print("up", flush=True)


def touch(n: int) -> bytearray:
    return bytearray(b"\x01") * n


def leaker(tmp: str) -> None:
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(128)
    addr = lst.getsockname()

    def closer():
        while True:
            c, _ = lst.accept()
            c.close()
    threading.Thread(target=closer, daemon=True).start()
    held, buf, stop = [], bytearray(), threading.Event()
    up()
    i = 0
    while True:
        i += 1
        held.append(open(os.path.join(tmp, f"leak-{i}.dat"), "w"))
        gone = os.path.join(tmp, f"leak-{i}.tmp")
        held.append(open(gone, "w"))
        os.unlink(gone)
        held.append(os.pipe())
        if hasattr(os, "eventfd"):
            held.append(os.eventfd(0))
        held.append(socket.create_connection(addr))
        threading.Thread(target=stop.wait, daemon=True).start()
        buf.extend(b"\x01" * MiB)
        time.sleep(0.2)


def steady(tmp: str) -> None:
    buf = touch(20 * MiB)
    files = [open(os.path.join(tmp, f"steady-{i}.dat"), "w") for i in range(10)]
    up()
    while files:
        buf[0] = (buf[0] + 1) % 256
        time.sleep(0.2)


def sawtooth(tmp: str) -> None:
    up()
    while True:
        # an anonymous mapping, so that freeing it gives the memory back at
        # once (malloc would keep it after the first cycle)
        buf = mmap.mmap(-1, 20 * MiB)
        buf.write(b"\x01" * (20 * MiB))
        files = [open(os.path.join(tmp, f"saw-{i}.dat"), "w") for i in range(30)]
        time.sleep(1.0)
        buf.close()
        for f in files:
            f.close()
        time.sleep(1.0)


def step(tmp: str) -> None:
    go = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: go.set())
    up()
    go.wait()
    time.sleep(1.0)
    files = [open(os.path.join(tmp, f"step-{i}.dat"), "w") for i in range(100)]
    buf = touch(40 * MiB)
    while files and buf:
        time.sleep(0.2)


def burner(tmp: str) -> None:
    up()
    x = 0
    while True:
        x += 1


def restarter(tmp: str) -> None:
    held, buf = [], bytearray()
    up()
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < 6.0:
        for _ in range(2):
            i += 1
            held.append(open(os.path.join(tmp, f"restarter-{os.getpid()}-{i}.dat"), "w"))
        buf.extend(b"\x01" * (2 * MiB))
        time.sleep(0.5)


def backlog(tmp: str) -> None:
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(16)
    clients = [socket.create_connection(lst.getsockname()) for _ in range(5)]
    print(f"up {lst.getsockname()[1]}", flush=True)
    while clients:
        time.sleep(1)


ROLES = {f.__name__: f for f in (leaker, steady, sawtooth, step, burner, restarter, backlog)}

if __name__ == "__main__":
    role = sys.argv[1]
    set_name(f"rp-{role}")
    ROLES[role](sys.argv[2])
