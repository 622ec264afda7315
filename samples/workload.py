"""A known workload for samples/ and tests: a parent with named children.

    python3 samples/workload.py [--late-after S] [--short-for S] [--hold S]

Children (comm names set with prctl so ps, top and procsnap show them):
  ps-burner   busy loop, ~100 % of one core
  ps-hog      touches 200 MiB and sleeps
  ps-threads  8 named threads (ps-worker-0..7) sleeping: nlwp 9
  ps-short    exits after --short-for seconds
  ps-late     started after --late-after seconds
  ps-server   listens on TCP 127.0.0.1:18080 (or any free port), holds one
              established connection to itself, a UDP socket on
              127.0.0.1:18081, a unix listener, a pipe, and a deleted file
The parent is ps-parent; it prints "ready" once the first children run and
kills every child on SIGTERM or after --hold seconds.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import threading
import time

_libc = ctypes.CDLL(None, use_errno=True)


def set_name(name: str) -> None:
    _libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


def child(role: str) -> None:
    set_name(f"ps-{role}")
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if role == "burner":
        x = 0
        while True:
            x += 1
    elif role == "hog":
        buf = bytearray(200 * 1024 * 1024)
        for i in range(0, len(buf), 4096):
            buf[i] = 1
        while True:
            time.sleep(3600)
    elif role == "threads":
        def worker(i):
            set_name(f"ps-worker-{i}")
            while True:
                time.sleep(3600)
        for i in range(8):
            threading.Thread(target=worker, args=(i,), daemon=True).start()
        while True:
            time.sleep(3600)
    elif role == "server":
        import socket
        import tempfile
        lst = socket.socket()
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            lst.bind(("127.0.0.1", 18080))
        except OSError:
            lst.bind(("127.0.0.1", 0))
        lst.listen(8)
        cli = socket.create_connection(lst.getsockname())
        conn, _ = lst.accept()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.1", 18081))
        except OSError:
            udp.bind(("127.0.0.1", 0))
        d = tempfile.mkdtemp(prefix="procsnap-sample-")
        ux = socket.socket(socket.AF_UNIX)
        ux.bind(os.path.join(d, "control.sock"))
        ux.listen(4)
        r, w = os.pipe()
        gone = open(os.path.join(d, "scratch.tmp"), "w+")
        gone.write("x" * 4096)
        gone.flush()
        os.unlink(os.path.join(d, "scratch.tmp"))
        os.unlink(os.path.join(d, "control.sock"))  # the socket stays bound
        os.rmdir(d)
        keep = (lst, cli, conn, udp, ux, r, w, gone)
        while keep:
            time.sleep(3600)
    elif role == "short":
        time.sleep(float(os.environ.get("SHORT_FOR", "2")))
    else:  # late, sleeper
        while True:
            time.sleep(3600)
    os._exit(0)


def spawn(role: str) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            child(role)
        finally:
            os._exit(0)
    return pid


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--late-after", type=float, default=4.0)
    ap.add_argument("--short-for", type=float, default=2.0)
    ap.add_argument("--hold", type=float, default=3600.0)
    a = ap.parse_args()
    set_name("ps-parent")
    os.environ["SHORT_FOR"] = str(a.short_for)
    kids = [spawn(r) for r in ("burner", "hog", "threads", "short", "server")]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("ready " + " ".join(map(str, kids)), flush=True)
    t0 = time.monotonic()
    late = None
    while not stop.is_set() and time.monotonic() - t0 < a.hold:
        if late is None and time.monotonic() - t0 >= a.late_after:
            late = spawn("late")
            kids.append(late)
        try:  # reap ps-short when it exits
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pass
        stop.wait(0.1)
    for k in kids:
        try:
            os.kill(k, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for k in kids:
        try:
            os.waitpid(k, 0)
        except ChildProcessError:
            pass
    sys.exit(0)


if __name__ == "__main__":
    main()
