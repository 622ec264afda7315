"""Synthetic recordings with process_events and kernel_events rows (tests of the analyzer's
events command, diff's in-between section, the report's event findings and named queries)."""

import datetime as dt

from tests.support.synthetic import MiB, T0, proc, snapshot, write

BOOT_ID = "b1"


def at(i: int, ms: int = 0) -> dt.datetime:
    """The time of snapshot I (10 s apart) plus MS milliseconds."""
    return T0 + dt.timedelta(seconds=i * 10, milliseconds=ms)


def ev(kind, pid, t, **kw):
    start = kw.pop("start_time", t if kind == "fork" else None)
    row = {"boot_id": BOOT_ID, "time": t, "kernel_ts_ns": int((t - T0).total_seconds() * 1e9) + 10**12,
           "cpu": 0, "kind": kind, "pid": pid, "tid": pid, "start_time": start}
    row.update(kw)
    return row


def short(pid, ppid, t, name, cmdline, status=0, signal=None, uid=0, life_ms=50):
    """fork, exec and exit of a process living LIFE_MS."""
    st = t
    end = t + dt.timedelta(milliseconds=life_ms)
    return [ev("fork", pid, t, ppid=ppid, start_time=st),
            ev("exec", pid, t + dt.timedelta(milliseconds=1), ppid=ppid, start_time=st, name=name, cmdline=cmdline,
               exe=f"/usr/bin/{name}", cwd="/", uid=uid, gid=0),
            ev("exit", pid, end, ppid=ppid, start_time=st, name=name, uid=uid, gid=0,
               exit_status=None if signal else status, signal=signal, core_dumped=False if signal else None,
               utime=0.01, stime=0.01, elapsed=life_ms / 1000, max_rss=4 * MiB)]


def kern(seq, t, kind, text, **kw):
    row = {"boot_id": BOOT_ID, "seq": seq, "kernel_ts_us": seq * 1000, "time": t, "priority": 3, "level": "err",
           "facility": 0, "backlog": False, "text": text, "kind": kind}
    row.update(kw)
    return row


def recording(path, n=6, pe=None, ke=None, procs=None):
    """N snapshots 10 s apart; PE/KE map a snapshot index to the event rows written with it;
    PROCS maps an index to its process rows (default: a shell, pid 100)."""
    pe, ke, procs = pe or {}, ke or {}, procs or {}
    snaps = []
    for i in range(n):
        tables = {"processes": procs.get(i, [proc(100, i, "bash", user="root")])}
        if i in pe:
            tables["process_events"] = pe[i]
        if i in ke:
            tables["kernel_events"] = ke[i]
        snaps.append(snapshot(i, tables))
    return write(path, snaps)


def incident(path):
    """A crash loop (pid 100's 'worker' exiting 1 five times), a 'curl' ending well, a 'victim'
    killed by SIGKILL, a segfault and an OOM kill of pid 300, whose RSS grew before."""
    pe = {1: short(201, 100, at(0, 100), "curl", "curl https://example.com/?token=<redacted>")
          + short(202, 100, at(0, 500), "worker", "worker --serve", status=1)
          + short(203, 100, at(0, 2500), "worker", "worker --serve", status=1),
          2: short(204, 100, at(1, 500), "worker", "worker --serve", status=1)
          + short(205, 100, at(1, 2500), "worker", "worker --serve", status=1)
          + short(206, 100, at(1, 4500), "worker", "worker --serve", status=1)
          + short(207, 100, at(1, 6000), "victim", "victim", signal=9),
          4: [ev("exit", 300, at(3, 5000), ppid=1, name="hog", signal=9, core_dumped=False, uid=0,
                 start_time=T0 - dt.timedelta(hours=1))]}
    ke = {2: [kern(1, at(1, 7000), "segfault", "victim[207]: segfault at 0 ip 00007f sp 00007ff error 4 in libc.so",
                   pid=207, comm="victim", library="libc.so")],
          4: [kern(2, at(3, 4999), "oom_kill", "Memory cgroup out of memory: Killed process 300 (hog)",
                   pid=300, comm="hog", uid=0, cgroup="/hog", task_cgroup="/hog", oom_constraint="CONSTRAINT_MEMCG",
                   anon_rss=900 * MiB, file_rss=0, total_vm=1000 * MiB, memory_limit=1024 * MiB,
                   memory_usage=1024 * MiB)]}
    hog = lambda i: proc(300, i, "hog", rss=(100 + 200 * i) * MiB, user="root")  # noqa: E731
    procs = {i: [proc(100, i, "bash", user="root")] + ([hog(i)] if i <= 3 else []) for i in range(6)}
    return recording(path, pe=pe, ke=ke, procs=procs)
