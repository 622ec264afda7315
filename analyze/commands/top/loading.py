"""top's frame: what one snapshot of one host gives (:class:`Frame` of :class:`Task` rows, the
summary numbers as top computes them), read through :meth:`Recording.execute`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


CPU_MODES = (("us", "user"), ("sy", "system"), ("ni", "nice"), ("id", "idle"), ("wa", "iowait"),
             ("hi", "irq"), ("si", "softirq"), ("st", "steal"))


@dataclass
class Task:
    pid: int
    user: str
    priority: int
    nice: int
    virt_kib: int
    res_kib: int
    shr_kib: int
    state: str
    cpu_pct: float            # 0.0 when there is no interval (as top's first frame)
    mem_pct: float
    centis: int               # user + system CPU time, hundredths of a second
    command: str
    io_bps: float | None      # None: no interval, or /proc/PID/io was denied
    fds: int | None           # None: /proc/PID/fd was denied
    # not in top's table, but what procsnap replay sorts, filters and draws the tree by
    ppid: int | None = None
    threads: int | None = None
    start: dt.datetime | None = None
    cgroup: str | None = None
    # where its threads were, from the thread samples of the interval (None: none sampled)
    wait: str | None = None       # the most frequent state and what it did, e.g. "D read"
    wait_pct: float | None = None  # share of the interval's samples with a thread so


@dataclass
class Frame:
    host: str
    snapshot_id: int
    ts: dt.datetime           # when the snapshot was taken (UTC)
    interval_s: float | None  # None: no earlier snapshot, so no rates
    system: dict | None       # the `system` row; None when it was not recorded
    cpu: dict | None          # %Cpu(s) by top's abbreviation; None without an interval
    tasks: list[Task] = field(default_factory=list)
    samples: int = 0          # thread samples the recorder took in the interval (top's WAIT column)

    # ---- summary numbers, as top computes them
    def counts(self) -> dict:
        c = {"total": len(self.tasks), "running": 0, "sleeping": 0, "stopped": 0, "zombie": 0}
        for t in self.tasks:
            if t.state == "R":
                c["running"] += 1
            elif t.state in ("S", "D", "I"):
                c["sleeping"] += 1
            elif t.state in ("T", "t"):
                c["stopped"] += 1
            elif t.state == "Z":
                c["zombie"] += 1
        return c

    def memory_kib(self) -> dict | None:
        """Mem and Swap in KiB, derived as libproc2 4.0 derives them (meminfo.c)."""
        s = self.system
        if s is None:
            return None
        kib = {k: (s[k] or 0) // 1024 for k in ("mem_total", "mem_free", "mem_available", "buffers", "cached",
                                               "slab_reclaimable", "swap_total", "swap_free")}
        total, free, avail = kib["mem_total"], kib["mem_free"], kib["mem_available"]
        if avail == 0 or avail > total:
            avail = free
        used = total - avail
        if used < 0:
            used = total - free
        swap_used = kib["swap_total"] - kib["swap_free"] if kib["swap_free"] < kib["swap_total"] else 0
        return {"total": total, "free": free, "used": used,
                "buff_cache": kib["buffers"] + kib["cached"] + kib["slab_reclaimable"],
                "swap_total": kib["swap_total"], "swap_free": kib["swap_free"], "swap_used": swap_used,
                "avail": avail}

    def uptime_s(self) -> float | None:
        s = self.system
        if s is None:
            return None
        if s.get("uptime_s") is not None:
            return s["uptime_s"]
        return (self.ts - s["boot_time"]).total_seconds() if s.get("boot_time") else None


def load(rec, moment) -> Frame:
    """The frame of one host's snapshot (an analyze.data.db.Moment) in a Recording (procsnap's own
    SQL, so Recording.query: the read-only gate of execute() is for a user's)."""
    from analyze.data.views import process_rates_select, rates_at
    key = {"h": moment.host, "s": moment.snapshot_id}
    _, prev = rec.query("SELECT max(ts) FROM snapshots WHERE host = $h AND ts < $ts",
                          {"h": moment.host, "ts": moment.ts})
    prev_ts = prev[0][0] if prev else None
    interval = (moment.ts - prev_ts).total_seconds() if prev_ts is not None else None
    cols, rows = rec.query("SELECT * FROM system WHERE host = $h AND snapshot_id = $s", key)
    system = dict(zip(cols, rows[0])) if rows else None
    cpu = None
    if system is not None and interval is not None:
        sel = ", ".join(f"cpu_{m}_pct" for _, m in CPU_MODES)
        _, r = rec.query(f"SELECT {sel} FROM system_rates WHERE host = $h AND snapshot_id = $s", key)
        if r and r[0][0] is not None:
            cpu = {abbr: v for (abbr, _), v in zip(CPU_MODES, r[0])}
    # Rates from the snapshot before only (analyze.data.views.rates_at): what the process_rates
    # view gives, without sorting every snapshot of the recording into its windows.
    procs = rates_at(rec, "processes", moment, lambda src, only: (
        'SELECT p.pid, p."user", p.priority, p.nice, p.vms, p.rss, p.shared, p.state, p.utime, p.stime, p.name, '
        "p.num_fds, p.start_time, p.read_bytes, p.write_bytes, r.cpu_pct, r.read_bps + r.write_bps, "
        "p.ppid, p.num_threads, p.cgroup, r.interval_s IS NULL "
        "FROM processes p LEFT JOIN (SELECT boot_id, pid, start_time, cpu_pct, read_bps, write_bps, interval_s "
        f"FROM ({process_rates_select(src)}) WHERE host = $h AND snapshot_id = $s) r "
        "ON r.pid = p.pid AND r.start_time = p.start_time AND r.boot_id IS NOT DISTINCT FROM p.boot_id "
        f"WHERE p.host = $h AND p.snapshot_id = $s{only('p')} ORDER BY p.pid"))
    mem_total = system["mem_total"] // 1024 if system and system.get("mem_total") else 0
    # top caps %CPU at what all CPUs can give (its Irix mode: 100 per CPU)
    cap = 100.0 * system["ncpus"] if system and system.get("ncpus") else None
    frame = Frame(moment.host, moment.snapshot_id, moment.ts, interval, system, cpu)
    for (pid, user, prio, nice, vms, rss, shared, state, utime, stime, name, fds, start, rb, wb,
         cpu_pct, io_bps, ppid, threads, cgroup) in procs:
        if interval and cpu_pct is None and start is not None and start >= prev_ts:
            # Born during the interval: no earlier row, so all its CPU time (and I/O) is the
            # interval's, as top counts a task it has not seen before.
            cpu_pct = (utime + stime) / interval * 100
            io_bps = (rb + wb) / interval if rb is not None and wb is not None else None
        cpu_pct = cpu_pct or 0.0
        if cap is not None and cpu_pct > cap:
            cpu_pct = cap
        res = (rss or 0) // 1024
        frame.tasks.append(Task(
            pid, user or "", prio, nice, (vms or 0) // 1024, res, (shared or 0) // 1024, state, cpu_pct,
            res * 100 / mem_total if mem_total else 0.0, round(utime * 100) + round(stime * 100), name or "",
            io_bps, fds, ppid, threads, start, cgroup))
    _waits(rec, frame, key)
    return frame


def _waits(rec, frame: Frame, key: dict) -> None:
    """WAIT of each task: the state and activity its threads were most often sampled in over the
    interval (the thread samples written with this snapshot), and in what share of the samples."""
    _, r = rec.query("SELECT any_value(thread_samples) FROM snapshots WHERE host = $h AND snapshot_id = $s", key)
    frame.samples = (r[0][0] or 0) if r else 0
    if not frame.samples:
        return
    from analyze.commands.report.waits import waits_at_sql
    best: dict[int, tuple] = {}
    for pid, state, doing, samples, _ in rec.query(waits_at_sql(), key)[1]:
        best.setdefault(pid, (state, doing, samples))  # the first row of a pid is its most frequent
    for t in frame.tasks:
        if t.pid in best:
            state, doing, samples = best[t.pid]
            t.wait = state if doing in ("running", "?") else f"{state} {doing}"
            t.wait_pct = min(100.0, samples * 100 / frame.samples)
