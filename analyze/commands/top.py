"""``procsnap top``: what batch-mode ``top -b -n 1`` (procps-ng 4.0) shows, at any moment.

One frame per host: top's five summary lines and its task table with the
default columns (PID USER PR NI VIRT RES SHR S %CPU %MEM TIME+ COMMAND), read
from one snapshot (the live host now, or a recording at ``--at``). Every number
is computed the way top 4.0 computes it:

* ``top - HH:MM:SS up …,  load average: …``: the time of the snapshot (UTC, as
  everywhere in procsnap; top prints local time), uptime, load averages. Top's
  user count (logged-in sessions) is not recorded, so that part is left out;
* ``Tasks:``: processes by state as top counts them (R running; S, D and I
  sleeping; T and t stopped; Z zombie; the total counts every process);
* ``%Cpu(s):``: host CPU time by mode over the interval that ends at the
  snapshot (``system_rates``), as a share of all CPUs;
* ``MiB Mem`` / ``MiB Swap``: from /proc/meminfo as libproc2 4.0 derives them:
  used = MemTotal - MemAvailable, buff/cache = Buffers + Cached + SReclaimable,
  avail Mem = MemAvailable, swap used = SwapTotal - SwapFree;
* the table: VIRT, RES and SHR in KiB (scaled to m, g, … when too wide for the
  column, as top does), PR is the kernel priority (``rt`` for the highest
  real-time priorities), %CPU is the share of one CPU over the interval
  (``process_rates``; a process born during the interval counts all its CPU
  time, as in top), %MEM is RES over MemTotal, TIME+ is user+system CPU time as
  M:SS.hh, COMMAND is the command name, cut with ``+`` to the line width.

Without an earlier snapshot (the first of a recording) there is no interval: the
rates show as top shows an empty interval (0.0 %CPU, 100.0 id), and a note on
stderr says so. Live, two snapshots are taken half a second apart so that the
rates cover that half second.

Sort keys: cpu (default), mem (RES), time (TIME+), pid, io (bytes read + written
to storage per second over the interval; adds an IO/s column, KiB/s) and fds
(open descriptors; adds an FDS column). Like top, the order is high to low;
``-KEY`` gives low to high. Ties keep pid order.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import struct
import sys
import time
from dataclasses import dataclass, field

from analyze.errors import ProcsnapError, UsageError
from analyze.output import escape

SORT_KEYS = ("cpu", "mem", "io", "fds", "time", "pid")
FORMATS = ("text", "csv", "json")
LIVE_INTERVAL_S = 0.5

CPU_MODES = (("us", "user"), ("sy", "system"), ("ni", "nice"), ("id", "idle"), ("wa", "iowait"),
             ("hi", "irq"), ("si", "softirq"), ("st", "steal"))

# csv/json columns of the task table (values in the units named; command in full).
COLUMNS = ("pid", "user", "pr", "ni", "virt_kib", "res_kib", "shr_kib", "s", "cpu_pct", "mem_pct", "time_s",
           "time_plus", "command", "io_bps", "fds")


# --------------------------------------------------------------------------
# The frame: what one snapshot of one host gives


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


@dataclass
class Frame:
    host: str
    snapshot_id: int
    ts: dt.datetime           # when the snapshot was taken (UTC)
    interval_s: float | None  # None: no earlier snapshot, so no rates
    system: dict | None       # the `system` row; None when it was not recorded
    cpu: dict | None          # %Cpu(s) by top's abbreviation; None without an interval
    tasks: list[Task] = field(default_factory=list)

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
    """The frame of one host's snapshot (an analyze.data.db.Moment) in a Recording."""
    key = {"h": moment.host, "s": moment.snapshot_id}
    _, prev = rec.execute("SELECT max(ts) FROM snapshots WHERE host = $h AND ts < $ts",
                          {"h": moment.host, "ts": moment.ts})
    prev_ts = prev[0][0] if prev else None
    interval = (moment.ts - prev_ts).total_seconds() if prev_ts is not None else None
    cols, rows = rec.execute("SELECT * FROM system WHERE host = $h AND snapshot_id = $s", key)
    system = dict(zip(cols, rows[0])) if rows else None
    cpu = None
    if system is not None and interval is not None:
        sel = ", ".join(f"cpu_{m}_pct" for _, m in CPU_MODES)
        _, r = rec.execute(f"SELECT {sel} FROM system_rates WHERE host = $h AND snapshot_id = $s", key)
        if r and r[0][0] is not None:
            cpu = {abbr: v for (abbr, _), v in zip(CPU_MODES, r[0])}
    _, procs = rec.execute(
        'SELECT p.pid, p."user", p.priority, p.nice, p.vms, p.rss, p.shared, p.state, p.utime, p.stime, p.name, '
        "p.num_fds, p.start_time, p.read_bytes, p.write_bytes, r.cpu_pct, r.read_bps + r.write_bps "
        "FROM processes p LEFT JOIN (SELECT * FROM process_rates WHERE host = $h AND snapshot_id = $s) r "
        "ON r.pid = p.pid AND r.start_time = p.start_time AND r.boot_id IS NOT DISTINCT FROM p.boot_id "
        "WHERE p.host = $h AND p.snapshot_id = $s ORDER BY p.pid", key)
    mem_total = system["mem_total"] // 1024 if system and system.get("mem_total") else 0
    # top caps %CPU at what all CPUs can give (its Irix mode: 100 per CPU)
    cap = 100.0 * system["ncpus"] if system and system.get("ncpus") else None
    frame = Frame(moment.host, moment.snapshot_id, moment.ts, interval, system, cpu)
    for (pid, user, prio, nice, vms, rss, shared, state, utime, stime, name, fds, start, rb, wb,
         cpu_pct, io_bps) in procs:
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
            io_bps, fds))
    return frame


# --------------------------------------------------------------------------
# Order


def parse_sort(key: str) -> tuple[str, bool]:
    """``cpu`` → ("cpu", high to low); ``-cpu`` → low to high; ``+cpu`` as top's -o +FIELD."""
    k = (key or "").strip().lower()
    descending = True
    if k[:1] in ("+", "-"):
        descending = k[0] == "+"
        k = k[1:]
    if k not in SORT_KEYS:
        raise UsageError(f"bad sort key {key!r}: use {', '.join(SORT_KEYS)} (-KEY for low to high)")
    return k, descending


_SORT_VALUE = {
    "cpu": lambda t: t.cpu_pct,
    "mem": lambda t: t.res_kib,
    "io": lambda t: t.io_bps,
    "fds": lambda t: t.fds,
    "time": lambda t: t.centis,
    "pid": lambda t: t.pid,
}


def ordered(tasks: list[Task], key: str, descending: bool = True) -> list[Task]:
    """Sorted by KEY; ties keep pid order, and unknown values (None) come last either way."""
    value = _SORT_VALUE[key]
    known = [t for t in tasks if value(t) is not None]
    unknown = [t for t in tasks if value(t) is None]
    # sorted(reverse=True) keeps ties in their order too: pid order, as top's stable sort
    known = sorted(sorted(known, key=lambda t: t.pid), key=value, reverse=descending)
    return known + sorted(unknown, key=lambda t: t.pid)


# --------------------------------------------------------------------------
# top's text


def _f32(x: float) -> float:
    """x rounded to single precision: top computes these numbers as C floats."""
    return struct.unpack("f", struct.pack("f", x))[0]


def _summary_num(kib: int) -> str:
    """A summary memory figure in MiB, in 9 columns, '+' when it does not fit (top's prT)."""
    s = f"{_f32(_f32(kib) / 1024):.1f}"
    return s[:8] + "+" if len(s) > 9 else s.rjust(9)


def scale_mem(kib: int, width: int) -> str:
    """A KiB quantity in WIDTH columns: KiB, or m, g, t, p with one decimal (top's scale_mem)."""
    num = _f32(kib)
    s = f"{num:.0f}"
    if len(s) <= width:
        return s.rjust(width)
    for suffix in "mgtp":
        num = _f32(num / 1024.0)
        s = f"{num:.1f}{suffix}"
        if len(s) <= width:
            return s.rjust(width)
    return "?".rjust(width)


def scale_pcnt(v: float, width: int = 5) -> str:
    for s in (f"{v:#.1f}", f"{v:#.0f}"):
        if len(s) <= width:
            return s.rjust(width)
    return "?".rjust(width)


def scale_tics(centis: int, width: int = 9) -> str:
    """CPU time as top's TIME+: M:SS.hh, then M:SS, H,MM, Dd+HHh, Ww+DDd, Ww as width requires."""
    cc = centis % 100
    nt = centis // 100           # seconds
    nn = nt % 60
    nt //= 60                    # minutes
    tries = [f"{nt}:{nn:02d}.{cc:02d}", f"{nt}:{nn:02d}"]
    hours, mins = divmod(nt, 60)
    tries.append(f"{hours},{mins:02d}")
    days, hrs = divmod(hours, 24)
    tries.append(f"{days}d+{hrs:02d}h")
    weeks, dys = divmod(days, 7)
    tries += [f"{weeks}w+{dys:02d}d", f"{weeks}w"]
    for s in tries:
        if len(s) <= width:
            return s.rjust(width)
    return "?".rjust(width)


def _num(v, width: int) -> str:
    """A number (or top's "rt"), right-justified; '+' ends it when it does not fit."""
    s = str(v)
    return (s[:width - 1] + "+") if len(s) > width else s.rjust(width)


def _str(v: str, width: int) -> str:
    """Text, left-justified; '+' ends it when it does not fit."""
    return (v[:width - 1] + "+") if len(v) > width else v.ljust(width)


def pr_text(priority: int | None) -> str:
    if priority is None:  # not recorded (psutil read the processes)
        return "-"
    return "rt" if priority < -99 else str(priority)


def uptime_text(secs: float) -> str:
    """Uptime as top (libproc2 4.0) prints it: [D day[s], ]HH:MM or M min."""
    secs = int(secs)
    days = secs // 86400
    out = f"{days} {'days' if days > 1 else 'day'}, " if days else ""
    minutes = secs // 60
    hours = (minutes // 60) % 24
    minutes %= 60
    return out + (f"{hours:2d}:{minutes:02d}" if hours else f"{minutes} min")


def summary_lines(f: Frame) -> list[str]:
    lines = []
    s = f.system
    if s is not None:
        up = f.uptime_s()
        lines.append(f"top - {f.ts:%H:%M:%S} up {uptime_text(up) if up is not None else '?'},  "
                     f"load average: {s['load1']:.2f}, {s['load5']:.2f}, {s['load15']:.2f}")
    c = f.counts()
    lines.append(f"Tasks: {c['total']:3d} total, {c['running']:3d} running, {c['sleeping']:3d} sleeping, "
                 f"{c['stopped']:3d} stopped, {c['zombie']:3d} zombie")
    if s is not None:
        cpu = f.cpu or {abbr: (100.0 if abbr == "id" else 0.0) for abbr, _ in CPU_MODES}
        lines.append("%Cpu(s):" + ",".join(f"{cpu[abbr]:#5.1f} {abbr}" for abbr, _ in CPU_MODES) + " ")
        m = f.memory_kib()
        n = _summary_num
        lines.append(f"MiB Mem :{n(m['total'])} total,{n(m['free'])} free,{n(m['used'])} used,"
                     f"{n(m['buff_cache'])} buff/cache     ")
        lines.append(f"MiB Swap:{n(m['swap_total'])} total,{n(m['swap_free'])} free,{n(m['swap_used'])} used."
                     f"{n(m['avail'])} avail Mem ")
    return lines


def _columns(tasks: list[Task], extra: tuple[str, ...]) -> list[tuple[str, int, object]]:
    """The fixed-width columns before COMMAND: (heading, width, cell of a task); a negative width
    is a left-justified column."""
    pid_w = max([5] + [len(str(t.pid)) for t in tasks])
    cols = [
        ("PID", pid_w, lambda t: _num(t.pid, pid_w)),
        ("USER", -8, lambda t: _str(escape(t.user), 8)),
        ("PR", 3, lambda t: _num(pr_text(t.priority), 3)),
        ("NI", 3, lambda t: _num(t.nice, 3)),
        ("VIRT", 7, lambda t: scale_mem(t.virt_kib, 7)),
        ("RES", 6, lambda t: scale_mem(t.res_kib, 6)),
        ("SHR", 6, lambda t: scale_mem(t.shr_kib, 6)),
        ("S", 1, lambda t: _str(escape(t.state), 1)),
        ("%CPU", 5, lambda t: scale_pcnt(t.cpu_pct)),
        ("%MEM", 5, lambda t: scale_pcnt(t.mem_pct)),
        ("TIME+", 9, lambda t: scale_tics(t.centis)),
    ]
    if "io" in extra:
        cols.append(("IO/s", 7, lambda t: " " * 7 if t.io_bps is None else scale_mem(round(t.io_bps / 1024), 7)))
    if "fds" in extra:
        cols.append(("FDS", 5, lambda t: " " * 5 if t.fds is None else _num(t.fds, 5)))
    return cols


def table_lines(tasks: list[Task], extra: tuple[str, ...] = (), width: int | None = 80) -> list[str]:
    """top's task table: a heading and one line per task.

    As top in a WIDTH-column screen: lines stop one column short of WIDTH, a column
    that does not fit is left out, and COMMAND takes the room left (at least its
    heading's), cut with '+'. The columns procsnap adds (IO/s, FDS) widen the line
    rather than take COMMAND's room. WIDTH None: no limit.
    """
    from analyze.output import escape
    columns = _columns(tasks, extra)
    limit = width - 1 + sum(1 + abs(w) for name, w, _ in columns if name in ("IO/s", "FDS")) if width else None
    cols, used = [], -1
    for name, w, cell in columns:
        if limit is not None and used + 1 + abs(w) > limit:
            break
        cols.append((name, w, cell))
        used += 1 + abs(w)
    room = None if limit is None else limit - used - 1
    show_cmd = room is None or room >= len("COMMAND")
    head = [name.ljust(-w) if w < 0 else name.rjust(w) for name, w, _ in cols] + (["COMMAND"] if show_cmd else [])
    out = [" ".join(head)]
    for t in tasks:
        line = " ".join(cell(t) for _, _, cell in cols)
        if show_cmd:
            cmd = escape(t.command)
            if room is not None and len(cmd) > room:
                cmd = cmd[:room - 1] + "+"
            line += " " + cmd
        out.append(line)
    return out


def text(f: Frame, tasks: list[Task], extra: tuple[str, ...] = (), width: int | None = 80) -> str:
    summary = [line[:width] if width else line for line in summary_lines(f)]
    return "\n".join(summary + [""] + table_lines(tasks, extra, width)) + "\n"


# --------------------------------------------------------------------------
# csv / json


def record(t: Task) -> tuple:
    return (t.pid, t.user, "rt" if t.priority < -99 else t.priority, t.nice, t.virt_kib, t.res_kib, t.shr_kib,
            t.state, t.cpu_pct, t.mem_pct, t.centis / 100, scale_tics(t.centis).strip(), t.command, t.io_bps,
            t.fds)


def summary(f: Frame) -> dict:
    """The summary area as data (memory in MiB, %Cpu(s) null without an interval)."""
    s = f.system
    m = f.memory_kib()
    mib = (lambda k: m[k] / 1024) if m else (lambda k: None)
    return {
        "host": f.host,
        "time": f.ts,
        "snapshot_id": f.snapshot_id,
        "interval_s": f.interval_s,
        "uptime_s": f.uptime_s(),
        "users": None,
        "load_average": [s["load1"], s["load5"], s["load15"]] if s else None,
        "tasks": f.counts(),
        "cpu_pct": f.cpu,
        "mem_mib": {k: mib(k) for k in ("total", "free", "used", "buff_cache")} if m else None,
        "swap_mib": {"total": mib("swap_total"), "free": mib("swap_free"), "used": mib("swap_used"),
                     "avail_mem": mib("avail")} if m else None,
    }


# --------------------------------------------------------------------------
# The command


def live_recording(interval: float = LIVE_INTERVAL_S):
    """The live host as a Recording of two snapshots INTERVAL seconds apart (rates need two)."""
    from recorder.collect.collector import Collector

    from analyze.data.db import Recording
    c = Collector(tables=("system", "processes"), redact=False)  # nothing reaches disk
    first = c.snapshot()
    time.sleep(max(0.0, interval - (time.time() - first.ts.timestamp())))
    return Recording.from_snapshots([first, c.snapshot()])


def default_width() -> int:
    """As top -b: $COLUMNS, else the terminal's width, else 80."""
    return shutil.get_terminal_size((80, 24)).columns


def run(recs=None, at=None, hosts=None, n=None, sort="cpu", fmt="text", width=None, out=None, err=None) -> int:
    """`procsnap top`: print the frame of each host; returns the exit status."""
    from analyze.data.damage import LOSSES
    LOSSES.clear()  # what this answer leaves out, not an earlier one's (when run in a process that ran others)
    from analyze.data.damage import LOSSES, json_list, losses_json, write_partial
    from analyze.data.db import lost_at, moments_for, say_moments
    from analyze.errors import PartialError
    from analyze.output import _json_value, render, write_guarded
    out = out or sys.stdout
    err = err or sys.stderr
    if fmt not in FORMATS:
        raise UsageError(f"bad format {fmt!r}: use text, csv or json")
    if n is not None and n < 0:
        raise UsageError(f"bad number of rows {n}: must be 0 or more")
    if width is not None and width < 0:
        raise UsageError(f"bad width {width}: must be 0 (no limit) or more")
    key, descending = parse_sort(sort)
    rec, moments = moments_for(recs, at, hosts, "top")
    if rec is None:
        rec = live_recording()
        moments = rec.moment(None)
    frames = []
    for m in moments:
        f = load(rec, m)
        if not f.tasks and recs and lost_at(rec, "processes", m):
            raise PartialError(lost_at(rec, "processes", m))
        if not f.tasks:
            raise ProcsnapError(f"no processes in the snapshot of {m.host} at {m.ts:%Y-%m-%d %H:%M:%S} UTC: "
                                "the recording was made without the processes table")
        frames.append(f)
    if recs:
        say_moments(moments, err)
    for f in frames:
        if f.interval_s is None:
            err.write(f"procsnap: {escape(f.host)}: no snapshot before this one, so no interval for rates: "
                      "%CPU and %Cpu(s) show as top shows an empty interval (0.0, 100.0 id), IO/s blank\n")
        elif f.system is not None and f.cpu is None:
            err.write(f"procsnap: {escape(f.host)}: no CPU counters to compare with the snapshot before (they went "
                      "backwards, or were not recorded): %Cpu(s) shows as an empty interval\n")
        if f.system is None:
            err.write(f"procsnap: {escape(f.host)}: no system row in this snapshot (recorded without the system "
                      "table): only the Tasks line of the summary\n")
    err.flush()
    extra = (key,) if key in ("io", "fds") else ()
    shown = [ordered(f.tasks, key, descending)[:n] for f in frames]

    def write():
        if fmt == "text":
            w = default_width() if width is None else (width or None)
            # several hosts (a fleet): each host's screen under a line naming it
            label = (lambda f: f"== {escape(f.host)} ==\n") if len(frames) > 1 else (lambda f: "")
            out.write("\n".join(label(f) + text(f, ts, extra, w) for f, ts in zip(frames, shown)))
            write_partial(out, fmt)
        elif fmt == "json":
            docs = [{"summary": summary(f), "processes": [dict(zip(COLUMNS, record(t))) for t in ts]}
                    for f, ts in zip(frames, shown)]
            doc = docs[0] if len(docs) == 1 else docs
            if LOSSES:
                doc = {**doc, "partial": losses_json()} if isinstance(doc, dict) else json_list(doc)
            json.dump(_json_value(doc), out, indent=1)
            out.write("\n")
        else:
            several = len(frames) > 1
            cols = (["host"] if several else []) + list(COLUMNS)
            rows = [((f.host,) if several else ()) + record(t) for f, ts in zip(frames, shown) for t in ts]
            render(cols, rows, "csv", out=out)
            write_partial(out, "csv")

    # `procsnap top | head`: when the reader is gone there is nothing more to say.
    write_guarded(out, write)
    return 0
