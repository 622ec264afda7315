"""The views of procsnap replay, each as lines of text from the commands' own renderings.

A view is a :class:`Page`: lines fixed at the top (a heading), the body lines (scrolled), the
key of each body row a user can open (a pid), and the command line that answers the same at
that moment. The numbers are the commands' own: top's frame and table
(:mod:`analyze.commands.top`), lsof's listing, ps's, events' table, diff's text; this module
only chooses and arranges them.
"""

from __future__ import annotations

import datetime as dt
import shlex
from dataclasses import dataclass, field, replace

from analyze.commands.replay.lines import spark
from analyze.commands.replay.source import Source, iso, shown
from analyze.commands.top.order import ordered
from analyze.commands.top.rendering import summary_lines, table_lines

# view key -> (name, what it shows)
VIEWS = {
    "h": ("host", "CPU, memory, load, PSI, disks, NICs, with their history"),
    "p": ("processes", "top's table: sort, tree, filter, search; Enter opens one"),
    "s": ("sockets", "listeners and connections, by state and port"),
    "o": ("files", "every open file, as lsof lists them"),
    "e": ("events", "process starts and exits, kernel reports, in the interval"),
}
SORTS = {"C": "cpu", "M": "mem", "I": "io", "F": "fds", "L": "threads", "S": "start"}


@dataclass
class State:
    """What the user chose: the view and its options (the moment is the app's)."""
    view: str = "processes"
    sort: str = "cpu"
    descending: bool = True
    tree: bool = False
    filter: str = ""
    pid: int | None = None
    listeners: bool = False
    mark: int | None = None


@dataclass
class Page:
    title: str
    head: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    keys: list = field(default_factory=list)     # per body row: the pid Enter opens (None: nothing)
    command: str = ""
    note: str = ""


def _num(v, unit: str = "", digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}{unit}"


def _bytes(v) -> str:
    if v is None:
        return "-"
    for unit in ("B", "K", "M", "G", "T"):
        if abs(v) < 1024 or unit == "T":
            return f"{v:.0f}{unit}" if unit == "B" else f"{v:.1f}{unit}"
        v /= 1024
    return "-"


def host(src: Source, i: int, width: int) -> Page:
    f = src.frame(i)
    r = src.rates_at(i)
    h = src.history
    w = max(10, min(60, width - 34))
    lines = summary_lines(f)
    lines.append("PSI some:  cpu " + _num(r.get("psi_cpu_some_pct"), "%") + "   memory "
                 + _num(r.get("psi_memory_some_pct"), "%") + "   io " + _num(r.get("psi_io_some_pct"), "%"))
    lines.append("")
    lines.append(f"{'history (one column per snapshot)':<22}  {'now':>8}  ")
    for label, values, fmt, top in (("CPU busy %", h.cpu_busy, "%", 100.0), ("load 1 min", h.load1, "", None),
                                    ("memory used %", h.mem_used_pct, "%", 100.0),
                                    ("PSI cpu some %", h.psi.get("cpu", []), "%", None),
                                    ("PSI memory some %", h.psi.get("memory", []), "%", None),
                                    ("PSI io some %", h.psi.get("io", []), "%", None)):
        now = values[i] if i < len(values) else None
        lines.append(f"{label:<22}  {_num(now, fmt, 2 if not fmt else 1):>8}  {spark(values, i, w, top)}")
    disks = src.disks_at(i)
    lines.append("")
    lines.append(f"{'DISK':<12} {'r/s':>7} {'w/s':>7} {'read/s':>8} {'write/s':>8} {'util':>6} {'await':>7}  "
                 "util history")
    for dev, rps, wps, rb, wb, util, aw in disks:
        hist = h.disks.get(dev, ([], []))[1]
        lines.append(f"{dev:<12} {_num(rps):>7} {_num(wps):>7} {_bytes(rb):>8} {_bytes(wb):>8} "
                     f"{_num(util, '%'):>6} {_num(aw, 'ms'):>7}  {spark(hist, i, max(10, w - 20), 100.0)}")
    if not disks:
        lines.append("(no disk rows at this snapshot)")
    nics = src.nics_at(i)
    lines.append("")
    lines.append(f"{'NIC':<12} {'rx/s':>8} {'tx/s':>8} {'rx pk/s':>8} {'tx pk/s':>8} {'err/s':>6} {'drop/s':>6}  "
                 "rx history")
    for nic, rx, tx, rxp, txp, errs, drops in nics:
        hist = h.nics.get(nic, ([], []))[0]
        lines.append(f"{nic:<12} {_bytes(rx):>8} {_bytes(tx):>8} {_num(rxp, '', 0):>8} {_num(txp, '', 0):>8} "
                     f"{_num(errs, '', 0):>6} {_num(drops, '', 0):>6}  {spark(hist, i, max(10, w - 20))}")
    if not nics:
        lines.append("(no NIC rows at this snapshot)")
    marks = h.marks.get(i, [])
    lines.append("")
    if marks:
        kinds = {}
        for k in marks:
            kinds[k] = kinds.get(k, 0) + 1
        lines.append("in this interval: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
                     + "  (e: the events)")
    total = sum(len(v) for v in h.marks.values())
    lines.append(f"kernel reports and killed processes in the recording: {total} ('!' on the time line)")
    return Page("host", body=lines, keys=[None] * len(lines), command=src.command(i, "top", "-n", "0"))


def _matches(t, text: str) -> bool:
    """The filter: ``user:NAME``, ``cgroup:TEXT``, ``name:TEXT``, or TEXT in any of them."""
    what, sep, value = text.partition(":")
    if sep and what in ("user", "cgroup", "name"):
        field_ = {"user": t.user, "cgroup": t.cgroup or "", "name": t.command}[what]
        return value.lower() in field_.lower()
    t_ = text.lower()
    return t_ in t.command.lower() or t_ in t.user.lower() or t_ in (t.cgroup or "").lower()


def _forest(tasks: list) -> list:
    """The tasks as a tree, each under its parent (siblings in the order given), COMMAND indented
    as ps's forest (``\\_ ``)."""
    pids = {t.pid for t in tasks}
    children: dict = {}
    roots = []
    for t in tasks:
        if t.ppid in pids and t.ppid != t.pid:
            children.setdefault(t.ppid, []).append(t)
        else:
            roots.append(t)
    out, seen = [], set()

    def walk(t, depth):
        if t.pid in seen:
            return
        seen.add(t.pid)
        out.append(replace(t, command=("    " * (depth - 1) + " \\_ " if depth else "") + t.command))
        for c in children.get(t.pid, []):
            walk(c, depth + 1)
    for t in roots:
        walk(t, 0)
    return out


def processes(src: Source, i: int, st: State, width: int) -> Page:
    f = src.frame(i)
    tasks = ordered(f.tasks, st.sort, st.descending)
    if st.filter:
        tasks = [t for t in tasks if _matches(t, st.filter)]
    if st.tree:
        tasks = _forest(tasks)
    extra = ((st.sort,) if st.sort in ("io", "fds") else ()) + (("wait",) if f.samples else ())
    lines = table_lines(tasks, extra, width)
    sort = st.sort if st.descending else "-" + st.sort
    note = (f"{len(tasks)} of {len(f.tasks)} processes match {st.filter!r}" if st.filter else "") \
        + ("; tree" if st.tree else "")
    if not f.tasks:
        from analyze.data.db import lost_at
        note = lost_at(src.rec, "processes", src.moment(i)) or "no processes in this snapshot (recorded without " \
                                                                 "the processes table)"
    return Page("processes", head=lines[:1], body=lines[1:], keys=[t.pid for t in tasks],
                command=src.command(i, "top", "--sort", sort, "-w", str(width)), note=note.strip("; "))


def process(src: Source, i: int, pid: int, width: int) -> Page:
    f = src.frame(i)
    t = next((t for t in f.tasks if t.pid == pid), None)
    lines: list[str] = []
    if t is None:
        lines.append(f"process {pid} is not in the snapshot at {shown(src.times[i])}")
    else:
        lines.append(f"{t.pid} {t.command}  user {t.user}  state {t.state}  ppid {t.ppid}  threads {t.threads}  "
                     f"fds {t.fds if t.fds is not None else '-'}  %CPU {t.cpu_pct:.1f}  RES {t.res_kib} KiB")
        lines.append(f"started {shown(t.start) if t.start else '?'}  cgroup {t.cgroup or '-'}")
        hist = src.process_history(t.pid, t.start)
        pos = {ts: k for k, ts in enumerate(src.times)}
        n = len(src.times)
        cpu, rss, fds = [None] * n, [None] * n, [None] * n
        for ts, c, r, d in hist:
            k = pos.get(ts)
            if k is not None:
                cpu[k], rss[k], fds[k] = c, r, d
        w = max(10, min(60, width - 30))
        lines.append("")
        lines.append(f"{'%CPU':<10} {_num(cpu[i]):>10}  {spark(cpu, i, w)}")
        lines.append(f"{'RSS':<10} {_bytes(rss[i]):>10}  {spark(rss, i, w)}")
        lines.append(f"{'FDs':<10} {_num(fds[i], '', 0):>10}  {spark(fds, i, w)}")
    lines.append("")
    argv = ["-L", "-o", "pid,lwp,%cpu,stat,time,comm", "-p", str(pid)]
    threads = src.ps_lines(i, argv)
    lines.append(f"threads: {len(threads) - 1 if threads else 0}   ({src.command(i, 'ps', *argv)})")
    lines.extend(threads)
    lines.append("")
    m, files, _ = src.lsof_lines(i, ["-p", str(pid)])
    when = f", from the snapshot at {shown(m.ts)}" if m is not None and m.ts != src.times[i] else ""
    lines.append(f"open files: {len(files) - 1 if files else 0}{when}")
    lines.extend(files)
    lines.append("")
    ev = src.events_lines(src.times[0], src.times[-1], [str(pid)])
    lines.append(f"lifecycle events of pid {pid} in the recording: {len(ev) - 1 if ev else 0}")
    lines.extend(ev)
    if src.live:
        cmd = src.command(i, "lsof", "-p", str(pid))
    else:
        cmd = src.command(None, "lsof", *(["--at", iso(m.ts)] if m is not None else []), "-p", str(pid))
    return Page(f"process {pid}", head=lines[:1], body=lines[1:], keys=[None] * (len(lines) - 1), command=cmd)


def sockets(src: Source, i: int, st: State) -> Page:
    argv = ["-i"] + (["-sTCP:LISTEN"] if st.listeners else [])
    m, lines, rows = src.lsof_lines(i, argv)
    states: dict = {}
    ports: dict = {}
    for r in rows:
        s = (r.inet.state if r.inet is not None else None) or "-"
        states[s] = states.get(s, 0) + 1
        if r.inet is not None and s == "LISTEN" and r.inet.lport is not None:
            ports[r.inet.lport] = ports.get(r.inet.lport, 0) + 1
    head = ["by state: " + (", ".join(f"{k} {n}" for k, n in sorted(states.items(), key=lambda x: -x[1])) or "-"),
            "listening ports: " + (" ".join(str(p) for p in sorted(ports)[:40]) or "-")
            + (" …" if len(ports) > 40 else "")]
    note = "" if m is None or m.ts == src.times[i] else f"sockets from the snapshot at {shown(m.ts)}"
    if m is None:
        note = "no snapshot with open files at or before this one"
    at = [] if m is None else ["--at", iso(m.ts)]
    cmd = src.command(i, "lsof", *argv) if src.live else src.command(None, "lsof", *at, *argv)
    return Page("sockets" + (" (listeners)" if st.listeners else ""), head=head + lines[:1], body=lines[1:],
                keys=[r.pid for r in rows], command=cmd, note=note)


def files(src: Source, i: int) -> Page:
    m, lines, rows = src.lsof_lines(i, [])
    note = "" if m is None or m.ts == src.times[i] else f"open files from the snapshot at {shown(m.ts)}"
    if m is None:
        note = "no snapshot with open files at or before this one"
    at = [] if m is None else ["--at", iso(m.ts)]
    cmd = src.command(i, "lsof") if src.live else src.command(None, "lsof", *at)
    return Page("files", head=lines[:1], body=lines[1:], keys=[r.pid for r in rows], command=cmd, note=note)


def events(src: Source, i: int) -> Page:
    t1 = src.times[i]
    t0 = src.times[i - 1] if i > 0 else dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    lines = src.events_lines(t0, t1)
    frm = ["--from", iso(src.times[i - 1])] if i > 0 else []
    note = "" if lines else "no process or kernel event in the interval ending here"
    return Page("events", head=lines[:1], body=lines[1:], keys=[None] * max(0, len(lines) - 1),
                command=src.command(None, "events", *frm, "--to", iso(t1)), note=note)


def diff(src: Source, mark: int, i: int) -> Page:
    lines = src.diff_lines(mark, i)
    lo, hi = sorted((mark, i))
    return Page("diff", body=lines, keys=[None] * len(lines),
                command=src.command(None, "diff", "--from", iso(src.times[lo]), "--to", iso(src.times[hi])))


KEYS_HELP = [
    "time:   t next snapshot   T previous   g first   G last   b go to a time (03:14, -10m, 2026-12-04T03:14Z)",
    "        m mark this moment   d procsnap diff between the mark and here   a click on the time line: there",
    "views:  h host   p processes   Enter one process (from processes, sockets, files)   s sockets   o files",
    "        e events   ? this help   Esc back   q quit",
    "processes: C %CPU  M memory  I I/O  F fds  L threads  S start time  R reverse  V tree",
    "        f filter (text, user:NAME, cgroup:TEXT, name:TEXT; empty: none)",
    "any list: / search   n next match   arrows, PgUp/PgDn, Home/End scroll",
    "sockets: l listeners only / all",
    "",
    "Rates cover the interval that ends at the snapshot shown: the numbers procsnap top --at prints.",
    "The line at the bottom is the command that answers the same: paste it into a post-mortem.",
]


def help_page(src: Source, i: int) -> Page:
    return Page("help", body=KEYS_HELP, keys=[None] * len(KEYS_HELP),
                command=shlex.join(["procsnap", "replay", *src.paths]))
