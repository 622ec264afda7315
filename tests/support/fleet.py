"""A fleet recording written by procsnap's own store: one folder, table first, three hosts (two
named like numbers, ``0007`` and ``10``), two days, in every state compaction leaves a partition
in. The snapshots are synthetic (tests.support.synthetic), 20 s apart, six on each side of
midnight; CPU, descriptor and socket values are chosen so that no two answers tie.

Per host and day (D1 = 2026-11-28, D2 = 2026-11-29):

* ``0007``: D1 compacted, its small files deleted; D2 compacted, then two more small files.
* ``10``: small files only; its last snapshot is uncommitted (the recorder died before its
  ``snapshots`` file: its rows are in no answer).
* ``web-1``: D1 compacted with the small files it merged still there (compaction's grace
  period: a plain glob reads those rows twice); D2 small files only.
"""

from __future__ import annotations

import datetime as dt
import os

from recorder.store import compact as C
from recorder.store.folder import Store
from recorder.store.layout import id_date

from tests.support.synthetic import T0, proc, snapshot

HOSTS = ("0007", "10", "web-1")
FIRST = 7548  # synthetic.snapshot's step index of 2026-11-28 23:58:00
N = 12  # snapshots per host, 20 s apart: six on each side of midnight
NAMES = {1: "init", 200: "nginx", 300: "postgres", 400: "burner"}
LATE = 500  # started during the day's fifth snapshot


def index(k: int) -> int:
    return FIRST + 2 * k


def when(k: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=10 * index(k))


def sid(k: int) -> int:
    return int(when(k).timestamp() * 1_000_000)


def tables(k: int, h: int) -> dict:
    """The rows of host number H's snapshot K."""
    pids = list(NAMES) + ([LATE] if k >= 4 else [])
    procs, files, socks = [], [], []
    for j, pid in enumerate(pids):
        name = NAMES.get(pid, "late")
        start = when(4) if pid == LATE else None
        rate = (3 * j + h + 1) * 0.25  # CPU seconds per snapshot: exact in binary, distinct per host and pid
        nfd = 3 + 2 * j + 7 * h  # descriptors: distinct per host and pid
        procs.append(proc(pid, index(k), name, start=start, utime=rate * (k + 1), stime=0.0, num_fds=nfd,
                          fd_limit=1000))
        for fd in range(nfd):
            kind = ("REG", "IPv4", "FIFO", "a_inode")[fd % 4]
            files.append({"boot_id": "b1", "pid": pid, "fd": f"{fd}u", "fd_num": fd, "type": kind,
                          "name": f"/var/{name}/{fd}", "deleted": fd == 5, "inode": 1000 * pid + fd})
        files.append({"boot_id": "b1", "pid": pid, "fd": "cwd", "type": "DIR", "name": "/"})  # not a descriptor
    listen = [(200, "IPv4", "TCP", "0.0.0.0", 80 + h, "LISTEN", 3 + h), (200, "IPv6", "TCP", "::", 443, "LISTEN", 0),
              (300, "IPv4", "TCP", "127.0.0.1", 5432, "LISTEN", h), (1, "IPv4", "UDP", "0.0.0.0", 68, "UNCONN", 0),
              (300, "IPv4", "TCP", "10.0.0.1", 5432, "ESTAB", 0)]
    for n, (pid, fam, prot, addr, port, state, q) in enumerate(listen):
        socks.append({"boot_id": "b1", "pid": pid, "fd": 20 + n, "inode": 5000 + n, "family": fam, "proto": prot,
                      "local_addr": addr, "local_port": port, "state": state, "rx_queue": q})
    socks.append({"boot_id": "b1", "pid": 400, "fd": 30, "inode": 6000, "family": "UNIX", "sock_type": "STREAM",
                  "unix_path": f"/run/burner{h}.sock", "state": "LISTEN", "rx_queue": 0})
    return {"processes": procs, "open_files": files, "sockets": socks}


def _compact(st: Store, host: str, ks: range) -> None:
    C.compact_range(st, f"host={host}", f"date={id_date(sid(ks[0]))}", [sid(k) for k in ks])


def write_fleet(root) -> None:
    """Write the fleet recording described above into ROOT."""
    with Store(root) as st:
        for h, host in enumerate(HOSTS):
            for k in range(N if host != "0007" else 10):
                st.write(snapshot(index(k), tables(k, h), host=host))
        _compact(st, "0007", range(0, 6))
        _compact(st, "0007", range(6, 10))
        C.delete_covered(st, grace=0)  # 0007's small files go
        _compact(st, "web-1", range(0, 6))  # web-1's stay: the grace period
        for k in (10, 11):
            st.write(snapshot(index(k), tables(k, 0), host="0007"))
    day2 = os.path.join(root, "snapshots", "host=10", f"date={id_date(sid(N - 1))}")
    os.remove(os.path.join(day2, f"{sid(N - 1)}.parquet"))  # uncommitted: the recorder died
