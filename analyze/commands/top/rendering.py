"""top's output: the summary lines and the task table as top -b prints them (its number scaling,
column widths and cuts), and the csv/json records and summary."""

from __future__ import annotations

import struct

from analyze.commands.top.loading import CPU_MODES, Frame, Task
from analyze.output import escape


# csv/json columns of the task table (values in the units named; command in full).
COLUMNS = ("pid", "user", "pr", "ni", "virt_kib", "res_kib", "shr_kib", "s", "cpu_pct", "mem_pct", "time_s",
           "time_plus", "command", "io_bps", "fds", "wait", "wait_pct")
WAIT_WIDTH = 16
ADDED = ("IO/s", "FDS", "WAIT")  # procsnap's columns: they widen the line rather than take COMMAND's room


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
    if f.samples:
        lines.append(f"Waits: {f.samples} thread samples in the interval (WAIT: most sampled state and call)")
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
    if "wait" in extra:
        cols.append(("WAIT", -WAIT_WIDTH, lambda t: _str(escape(wait_text(t)), WAIT_WIDTH)))
    return cols


def wait_text(t: Task) -> str:
    """WAIT: the state and system call (or activity) a process's threads were most often sampled
    in over the interval, with the share of the samples in which one was so; '-' when none was
    sampled (a process whose threads all slept, when S is not sampled)."""
    return "-" if t.wait is None else f"{t.wait} {t.wait_pct:.0f}%"


def table_lines(tasks: list[Task], extra: tuple[str, ...] = (), width: int | None = 80) -> list[str]:
    """top's task table: a heading and one line per task.

    As top in a WIDTH-column screen: lines stop one column short of WIDTH, a column
    that does not fit is left out, and COMMAND takes the room left (at least its
    heading's), cut with '+'. The columns procsnap adds (IO/s, FDS, WAIT) widen the line
    rather than take COMMAND's room. WIDTH None: no limit.
    """
    from analyze.output import escape
    columns = _columns(tasks, extra)
    limit = width - 1 + sum(1 + abs(w) for name, w, _ in columns if name in ADDED) if width else None
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


def record(t: Task) -> tuple:
    return (t.pid, t.user, "rt" if t.priority < -99 else t.priority, t.nice, t.virt_kib, t.res_kib, t.shr_kib,
            t.state, t.cpu_pct, t.mem_pct, t.centis / 100, scale_tics(t.centis).strip(), t.command, t.io_bps,
            t.fds, t.wait, t.wait_pct)


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
        "thread_samples": f.samples,
        "cpu_pct": f.cpu,
        "mem_mib": {k: mib(k) for k in ("total", "free", "used", "buff_cache")} if m else None,
        "swap_mib": {"total": mib("swap_total"), "free": mib("swap_free"), "used": mib("swap_used"),
                     "avail_mem": mib("avail")} if m else None,
    }
