"""ps's rows read from a recording at a moment (``processes``, ``threads`` and their rate views,
through :meth:`Recording.execute`) or from the live host now."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from analyze.commands.ps.arguments import Options
from analyze.commands.ps.values import Proc
from analyze.data.views import rates_at
from analyze.errors import ProcsnapError


def pid_digits_live() -> int:
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            return len(f.read().strip()) or 5
    except OSError:
        return 5


PROC_COLUMNS = ("pid", "ppid", "pgid", "sid", "start_time", "name", "name_raw", "cmdline", "cmdline_raw", "exe",
                "state", "uid", "user", "ruid", "gid", "nice", "priority", "processor", "num_threads")
THREAD_COLUMNS = ("pid", "tid", "start_time", "name", "name_raw", "state", "nice", "priority", "processor")


def load(rec, moment, threads: bool, live: bool) -> list[Proc]:
    """The rows of one snapshot: its processes, or with threads their threads."""
    from analyze.data.views import process_rates_select, thread_rates_select
    key = {"h": moment.host, "s": moment.snapshot_id}
    _, sysrows = rec.execute("SELECT mem_total, uptime_s, boot_time FROM system "
                             "WHERE host = $h AND snapshot_id = $s", key)
    rows = rates_at(rec, "processes", moment, lambda src, only: (
        "SELECT p.pid, p.ppid, p.pgid, p.sid, p.start_time, p.name, p.name_raw, p.cmdline, p.cmdline_raw, "
        "p.exe, p.state, p.uid, p.\"user\", p.ruid, p.gid, p.nice, p.priority, p.processor, p.num_threads, "
        "p.utime + p.stime, p.rss, p.vms, p.minflt, p.majflt, p.cgroup, p.tty, r.cpu_pct, r.interval_s IS NULL "
        "FROM processes p LEFT JOIN (SELECT boot_id, pid, start_time, cpu_pct, interval_s "
        f"FROM ({process_rates_select(src)}) WHERE host = $h AND snapshot_id = $s) r "
        "ON r.pid = p.pid AND r.start_time = p.start_time AND r.boot_id IS NOT DISTINCT FROM p.boot_id "
        f"WHERE p.host = $h AND p.snapshot_id = $s{only('p')} ORDER BY p.pid"))
    trows = None
    if threads:
        trows = rates_at(rec, "threads", moment, lambda src, only: (
            "SELECT t.pid, t.tid, t.start_time, t.name, t.name_raw, t.state, t.nice, t.priority, t.processor, "
            "t.utime + t.stime, t.minflt, t.majflt, r.cpu_pct, r.interval_s IS NULL "
            "FROM threads t LEFT JOIN (SELECT boot_id, pid, tid, start_time, cpu_pct, interval_s "
            f"FROM ({thread_rates_select(src)}) WHERE host = $h AND snapshot_id = $s) r "
            "ON r.pid = t.pid AND r.tid = t.tid AND r.start_time = t.start_time "
            "AND r.boot_id IS NOT DISTINCT FROM t.boot_id "
            f"WHERE t.host = $h AND t.snapshot_id = $s{only('t')} ORDER BY t.pid, t.tid"), by_tid=True)
    return build_procs(moment.host, moment.ts, sysrows[0] if sysrows else (None, None, None), rows, trows, live)


def live_pids(o: Options) -> set | None:
    """The only processes a live listing must read: those of a lone -p (ps ORs every other
    selection with it, and -e, a, x, -N widen it), or None for all."""
    if o.pids and not (o.ppids or o.sids or o.ttys or o.euids or o.ruids or o.comms or o.my_tty or o.all
                       or o.simple or o.negate or o.running):
        return {int(p) for p in o.pids}
    return None


def load_live(o: Options, threads: bool) -> tuple[str, dt.datetime, list[Proc]]:
    """(host, now, rows) of the live host, read straight from /proc (no Arrow, no DuckDB: a one-shot
    ps must start fast) and only for the processes the options can select."""
    from recorder.collect.collector import Collector
    c = Collector(tables=("system", "processes"), redact=False)  # nothing reaches disk: print what ps prints
    now = dt.datetime.now(dt.timezone.utc)
    procs = c.live_processes(live_pids(o))
    system = c.live_system()
    rows = [tuple(p[k] for k in PROC_COLUMNS) + (p["utime"] + p["stime"], p["rss"], p["vms"], p["minflt"],
                                                  p["majflt"], p["cgroup"], p["tty"], None) for p in procs]
    trows = None
    if threads:
        trows = []
        for p in procs:
            try:
                got = c.live_threads(p["pid"])
            except Exception:  # gone since: ps shows no thread of it
                continue
            trows.extend(tuple(t[k] for k in THREAD_COLUMNS) + (t["utime"] + t["stime"], t["minflt"],
                                                                 t["majflt"], None) for t in got)
    sysrow = (system.get("mem_total"), system.get("uptime_s"), system.get("boot_time"))
    return c.host, now, build_procs(c.host, now, sysrow, rows, trows, True)


def build_procs(host: str, ts: dt.datetime, sysrow: tuple, rows, trows, live: bool) -> list[Proc]:
    """Procs (and with trows, thread lines) from process rows (PROC_COLUMNS, then cpu time, rss,
    vms, minflt, majflt, cgroup, tty, cpu_pct) and thread rows (THREAD_COLUMNS, then cpu time,
    minflt, majflt, cpu_pct) of one snapshot of one host."""
    mem_total, uptime, boot = sysrow
    now = ts.timestamp()

    def elapsed(start: dt.datetime) -> float:
        # as ps: the uptime at the snapshot less the start's offset from boot
        if uptime is not None and boot is not None and start >= boot:
            return max(uptime - (start - boot).total_seconds(), 0.0)
        return max((ts - start).total_seconds(), 0.0)

    def pcpu(rate, cputime: float, el: float) -> float:
        if rate is not None and not live:
            return rate
        return cputime * 100.0 / el if el > 0 else 0.0

    procs = []
    for (pid, ppid, pgid, sid, start, name, name_raw, cmd, cmd_raw, exe, state, uid, user, ruid, gid, nice,
         prio, cpu, nlwp, cputime, rss, vms, minflt, majflt, cgroup, tty, rate) in rows:
        el = elapsed(start)
        procs.append(Proc(
            host, pid, pid, ppid, pgid, sid, start, name or "", name_raw, cmd, cmd_raw, exe, state or "?",
            uid, user if user is not None else str(uid), ruid if ruid is not None else uid,
            gid if gid is not None else 0, nice or 0, prio if prio is not None else 20, cpu, nlwp or 1,
            cputime or 0.0, rss or 0, vms or 0, minflt or 0, majflt or 0, cgroup, tty, el, now,
            pcpu(rate, cputime or 0.0, el), mem_total, comm_proc=name or ""))
    if trows is None:
        return procs
    if procs and not trows:
        raise ProcsnapError(f"no threads in the snapshot of {host} at {ts:%Y-%m-%d %H:%M:%S} UTC: "
                            "the recording was made without the threads table (-L and -T need it)")
    by_pid = {p.pid: p for p in procs}
    out = []
    for pid, tid, start, name, name_raw, state, nice, prio, cpu, cputime, minflt, majflt, rate in trows:
        p = by_pid.get(pid)
        if p is None:
            continue
        if tid == pid:
            # as ps: the main thread's line shows the process's counters (its CPU time, faults, %CPU)
            out.append(replace(p, comm=name or p.comm, comm_raw=name_raw, thread=True))
            continue
        el = elapsed(start)
        out.append(replace(p, tid=tid, start=start, comm=name or "", comm_raw=name_raw, state=state or p.state,
                           nice=nice if nice is not None else p.nice,
                           priority=prio if prio is not None else p.priority, processor=cpu,
                           cputime=cputime or 0.0, minflt=minflt or 0, majflt=majflt or 0, elapsed=el,
                           pcpu=pcpu(rate, cputime or 0.0, el), thread=True))
    return out
