"""Synthetic snapshots and recordings, written through the real store: the process, system and
snapshots rows a test names, every other column at a quiet default. Times start at T0."""

import datetime as dt

from analyze.data.db import Recording
from recorder.collect.collector import Snapshot
from recorder.collect.tables import to_table
from recorder.store.folder import Store

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 28, 3, 0, 0, tzinfo=UTC)
BOOT = T0 - dt.timedelta(days=1)
MiB = 1 << 20
N, STEP = 30, 10  # 30 snapshots, 10 s apart
RECORDER = 99


def fake_snapshot(i, procs, host="h1", system=None, step=10):
    """A snapshot at T0 + i*step seconds with the given process rows."""
    ts = T0 + dt.timedelta(seconds=i * step)
    sid = int(ts.timestamp() * 1_000_000)
    common = {"snapshot_id": sid, "ts": ts}
    s = Snapshot(sid, ts, host)
    base = {"boot_id": "b1", "ppid": 1, "pgid": 1, "sid": 1, "state": "S", "uid": 0, "user": "root", "ruid": 0,
            "gid": 0, "nice": 0, "priority": 20, "processor": 0, "num_threads": 1, "rss": 0, "vms": 0,
            "minflt": 0, "majflt": 0, "name": "x", "cmdline": "x", "start_time": T0 - dt.timedelta(hours=1)}
    s.tables["processes"] = to_table("processes", [{**base, **p} for p in procs], common)
    if system is not None:
        s.tables["system"] = to_table("system", [system], common)
    s.tables["snapshots"] = to_table("snapshots", [{"kernel": "k", "procsnap_version": "t", "duration_ms": 1.0,
                                                     "cpu_ms": 1.0, "recorder_pid": 1, "skipped": 0}], common)
    return s


def proc(pid, i, name, cmdline=None, start=None, **kw):
    start = start or T0 - dt.timedelta(hours=1)
    row = {"boot_id": "b1", "pid": pid, "ppid": 1, "pgid": pid, "sid": pid, "start_time": start, "name": name,
           "exe": f"/usr/bin/{name}", "cmdline": cmdline or f"/usr/bin/{name}", "state": "S", "uid": 0,
           "user": "root", "ruid": 0, "gid": 0, "nice": 0, "priority": 20, "processor": 0, "num_threads": 1,
           "utime": 1.0, "stime": 0.5, "rss": 50 * MiB, "vms": 500 * MiB, "minflt": 0, "majflt": 0,
           "num_fds": 20, "fd_limit": 1024, "cgroup": "/system.slice/x.service", "ctxsw_voluntary": 10 * i,
           "ctxsw_involuntary": i, "read_bytes": 0, "write_bytes": 0, "rchar": 0, "wchar": 0}
    row.update(kw)
    return row


def snapshot(i, tables, host="h1"):
    ts = T0 + dt.timedelta(seconds=i * STEP)
    sid = int(ts.timestamp() * 1_000_000)
    common = {"snapshot_id": sid, "ts": ts}
    s = Snapshot(sid, ts, host)
    for name, rows in tables.items():
        s.tables[name] = to_table(name, rows, common)
    s.tables["snapshots"] = to_table("snapshots", [{
        "boot_id": "b1", "kernel": "k", "procsnap_version": "t", "duration_ms": 1.0, "cpu_ms": 1.0,
        "recorder_pid": RECORDER, "skipped": 0, "interval_s": float(STEP),
        **{f"{t}_seen": len(tables.get(t, [])) for t in ("processes", "threads", "open_files", "sockets")}}], common)
    return s


def system_row(i, **kw):
    # CPU counters in seconds over 4 CPUs: per 10 s interval 40 CPU-seconds
    t = i * STEP * 4
    row = {"boot_time": BOOT, "ncpus": 4, "cpu_user": 0.3 * t, "cpu_nice": 0.0, "cpu_system": 0.1 * t,
           "cpu_idle": 0.6 * t, "cpu_iowait": 0.0, "cpu_irq": 0.0, "cpu_softirq": 0.0, "cpu_steal": 0.0,
           "cpu_guest": 0.0, "cpu_guest_nice": 0.0, "ctxt": 1000 * i * STEP, "intr": 0, "forks": 0,
           "procs_running": 2, "procs_blocked": 0, "load1": 1.0, "load5": 1.0, "load15": 1.0, "tasks_total": 100,
           "last_pid": 1000, "mem_total": 16 << 30, "mem_free": 8 << 30, "mem_available": 10 << 30,
           "swap_total": 0, "swap_free": 0, "pswpin": 0, "pswpout": 0, "pgfault": 0, "pgmajfault": 0, "oom_kill": 0,
           "file_handles": 5000, "file_max": 100000}
    row.update(kw)
    return row


def write(path, snaps):
    with Store(path) as st:
        for s in snaps:
            st.write(s)
    return Recording.open([str(path)])

