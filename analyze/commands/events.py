"""``procsnap events``: process events (process_events) and the kernel's incident reports
(kernel_events) of a recording, in time order; with --tree, who started what.

Selection as lsof's (-p, -u, -c ORed, ^ excludes: :func:`analyze.commands.who.selection`),
the window in the one time grammar (:mod:`analyze.data.timespec`), --kind for the kinds.
"""

from __future__ import annotations

import datetime as dt
import signal as _signal
import sys

from analyze.errors import UsageError
from recorder.collect.kernel_events import PARSED_KINDS
from recorder.collect.process_events import ROW_KINDS

PROCESS_KINDS = ROW_KINDS
# 'log' stands for the kernel log records no parser named (kernel_events.kind NULL).
KERNEL_KINDS = ("log",) + PARSED_KINDS
# Short names a responder types for a group of kinds.
ALIASES = {"oom": ("oom_kill",), "lockup": ("soft_lockup", "hard_lockup"), "kernel": KERNEL_KINDS[1:],
           "process": ("fork", "exec", "exit")}
DEFAULT_KINDS = tuple(k for k in PROCESS_KINDS if k != "threads" and not k.startswith("thread_")) + KERNEL_KINDS[1:]
COLUMNS = ["time", "host", "kind", "pid", "ppid", "user", "command", "detail"]
FORMATS = ("text", "table", "csv", "json")

# One row per event (a 'threads' row, a count over an interval, at the snapshot that ends it);
# a fork's command (NULL in the event) and a row's user id are the nearest
# ones the same process instance has later (exec, exit) or earlier (comm).
EVENTS_SQL = """
WITH users AS (SELECT uid, any_value("user") AS "user" FROM processes WHERE "user" IS NOT NULL GROUP BY uid),
pe AS (
  SELECT coalesce(time, ts) AS time, host, boot_id, kind, pid, ppid, start_time,
         coalesce(name, first_value(name IGNORE NULLS) OVER w, last_value(name IGNORE NULLS) OVER w0) AS command,
         coalesce(uid, first_value(uid IGNORE NULLS) OVER w, last_value(uid IGNORE NULLS) OVER w0) AS uid,
         cmdline, exe, exit_status, signal, core_dumped, elapsed, max_rss, utime, stime, threads
  FROM process_events
  WHERE kind IN (SELECT unnest($kinds)) AND coalesce(time, ts) BETWEEN $t0 AND $t1
  WINDOW w AS (PARTITION BY host, boot_id, pid, start_time ORDER BY kernel_ts_ns, kind
               ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING),
         w0 AS (PARTITION BY host, boot_id, pid, start_time ORDER BY kernel_ts_ns, kind
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT pe.time, pe.host, 'process' AS source, kind, pid, ppid,
       uid, u."user", command, start_time, boot_id, cmdline, exe, exit_status, signal, core_dumped, elapsed, max_rss,
       utime, stime, threads, NULL AS text, NULL AS cgroup, NULL AS anon_rss, NULL AS seconds, NULL AS port,
       NULL AS library
FROM pe LEFT JOIN users u USING (uid)
UNION ALL
SELECT time, host, 'kernel', coalesce(kind, 'log'), pid, NULL, k.uid, u."user", comm, start_time, boot_id, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, text, cgroup, anon_rss, seconds, port, library
FROM kernel_events k LEFT JOIN users u ON u.uid = k.uid
WHERE coalesce(kind, 'log') IN (SELECT unnest($kinds)) AND time BETWEEN $t0 AND $t1
ORDER BY time, source DESC, pid
"""


class _Row:
    """An event row as the selection (who.selected) and the output read it."""

    __slots__ = ("time", "host", "source", "kind", "pid", "ppid", "uid", "user", "command", "start_time",
                 "boot_id", "cmdline", "exe", "exit_status", "signal", "core_dumped", "elapsed", "max_rss",
                 "utime", "stime", "threads", "text", "cgroup", "anon_rss", "seconds", "port", "library")

    def __init__(self, values):
        for k, v in zip(self.__slots__, values):
            setattr(self, k, v)


def kinds(asked: list[str] | None) -> tuple[str, ...]:
    """--kind values (repeatable, comma-separated, aliases) as the recorded kinds."""
    if not asked:
        return DEFAULT_KINDS
    out: list[str] = []
    for item in asked:
        for k in item.split(","):
            k = k.strip()
            if k in ALIASES:
                out += ALIASES[k]
            elif k in PROCESS_KINDS or k in KERNEL_KINDS:
                out.append(k)
            else:
                raise UsageError(f"bad --kind {k!r}: use {', '.join((*PROCESS_KINDS, *KERNEL_KINDS, *ALIASES))}")
    return tuple(dict.fromkeys(out))


def signal_name(n: int | None) -> str:
    try:
        return _signal.Signals(n).name
    except (ValueError, TypeError):
        return f"signal {n}"


def ended(status: int | None, sig: int | None, core: bool | None) -> str:
    """How a process ended, as a shell would say it: 'status 1', 'SIGKILL (9)', '... core dumped'."""
    if sig is not None:
        return f"{signal_name(sig)} ({sig})" + (", core dumped" if core else "")
    if status is not None:
        return f"status {status}"
    return "?"


def detail(r: _Row) -> str:
    if r.source == "kernel":
        if r.kind == "oom_kill":
            rss = f" anon-rss {r.anon_rss // (1 << 20)} MiB" if r.anon_rss is not None else ""
            return f"killed by the OOM killer{rss}" + (f" in {r.cgroup}" if r.cgroup else "")
        if r.kind == "hung_task" and r.seconds is not None:
            return f"blocked for {r.seconds} s"
        return r.text or ""
    if r.kind == "exec":
        return r.cmdline or r.exe or ""
    if r.kind == "exit":
        s = ended(r.exit_status, r.signal, r.core_dumped)
        if r.elapsed is not None:
            s += f" after {r.elapsed:.3f} s"
        return s
    if r.kind == "fork":
        return f"started by {r.ppid}" if r.ppid is not None else ""
    if r.kind == "threads":
        return f"{r.threads} threads started"
    if r.kind in ("uid", "gid"):
        return f"{r.kind} now {r.uid}" if r.kind == "uid" else ""
    return ""


def window(rec, at_from: str | None, at_to: str | None) -> tuple[dt.datetime, dt.datetime]:
    from analyze.data.timespec import check_window, parse_span
    start, end = rec.time_range()
    t0 = parse_span(at_from, start, end)[0] if at_from is not None else dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    t1 = parse_span(at_to, start, end)[1] if at_to is not None else dt.datetime.max.replace(tzinfo=dt.timezone.utc)
    check_window(t0, t1)
    return t0, t1


def recorded(rec) -> bool:
    """Whether the recording has event tables at all (older recordings, one-off snapshots do not)."""
    return bool(rec.files.get("process_events") or rec.files.get("kernel_events"))


def load(rec, kind_list: tuple[str, ...], t0, t1, select=None) -> list[_Row]:
    from analyze.commands.who import selected
    _, rows = rec.query(EVENTS_SQL, {"kinds": list(kind_list), "t0": t0, "t1": t1})
    out = [_Row(v) for v in rows]
    return [r for r in out if selected(select, r.pid, r.uid, r.user, r.command)]


def tree(rows: list[_Row]) -> list[tuple[int, _Row]]:
    """(depth, row) for each process of the rows, children under the parent that forked them,
    in time order; a process's row is its fork (or first row), its exec and exit beside it."""
    nodes: dict[tuple, list] = {}   # instance -> [first row, exec row, exit row, children]
    latest: dict[tuple, tuple] = {}  # (host, boot, pid) -> its newest instance
    roots: list[tuple] = []
    for r in rows:
        if r.source != "process" or r.kind not in ("fork", "exec", "exit"):
            continue
        k = (r.host, r.boot_id, r.pid)
        inst = latest.get(k)
        if r.kind == "fork" or inst is None:
            inst = (*k, r.time)
            latest[k] = inst
            nodes[inst] = [r, None, None, []]
            parent = latest.get((r.host, r.boot_id, r.ppid)) if r.ppid is not None else None
            if parent is not None and parent in nodes:
                nodes[parent][3].append(inst)
            else:
                roots.append(inst)
        n = nodes[inst]
        if r.kind == "exec":
            n[1] = r
        elif r.kind == "exit":
            n[2] = r
    out: list[tuple[int, _Row, _Row | None, _Row | None]] = []

    def walk(inst, depth):
        first, ex, end, kids = nodes[inst]
        out.append((depth, first, ex, end))
        for c in kids:
            walk(c, depth + 1)

    for r in roots:
        walk(r, 0)
    return out


def tree_rows(rows: list[_Row]):
    cols = ["time", "host", "depth", "pid", "ppid", "user", "command", "program", "ended"]
    data = []
    for depth, first, ex, end in tree(rows):
        cmd = (ex.command if ex else None) or (end.command if end else None) or first.command
        data.append((first.time, first.host, depth, first.pid, first.ppid, first.user, cmd,
                     (ex.cmdline or ex.exe) if ex else None,
                     ended(end.exit_status, end.signal, end.core_dumped) if end else None))
    return cols, data


def tree_text(rows: list[_Row], out) -> None:
    """The tree, processes started by one that was there before the window under a line naming it."""
    from analyze.output import cell, escape
    shown = None
    for depth, first, ex, end in tree(rows):
        if depth == 0:
            parent = (first.host, first.ppid)
            if first.ppid is not None and parent != shown:
                out.write(f"{'':23}  {first.ppid} (started before)\n")
            shown = parent if first.ppid is not None else None
        if shown is not None:
            depth += 1
        cmd = (ex.command if ex else None) or (end.command if end else None) or first.command or "?"
        prog = f"  {(ex.cmdline or ex.exe or '')}" if ex else ""
        how = f"  [{ended(end.exit_status, end.signal, end.core_dumped)}]" if end else ""
        out.write(f"{cell(first.time, table=True)}  {'  ' * depth}{first.pid} {escape(cmd)}{escape(prog)}{how}\n")


def run(paths: list[str] | None, hosts, pids, users, cmds, kind: list[str] | None, at_from, at_to,
        fmt: str | None, as_tree: bool, err=None) -> int:
    """The answer on stdout; 0 when events are listed, 1 when none (3 when rows were unreadable,
    through analyze.data.damage.retrying)."""
    from analyze.commands.who import selection
    from analyze.data.damage import render, write_partial
    from analyze.data.db import Recording
    from analyze.output import default_format
    err = err or sys.stderr
    fmt = fmt or default_format()
    if fmt not in FORMATS:
        raise UsageError(f"bad format {fmt!r}: use text, csv or json")
    if not paths:
        raise UsageError("procsnap events reads a recording (events are kept by procsnap record): give --rec DIR")
    wanted = kinds(kind)
    select = selection(pids, users, cmds)
    rec = Recording.open(paths, hosts=hosts, derived=False)
    t0, t1 = window(rec, at_from, at_to)
    if not recorded(rec):
        print("procsnap: no process or kernel events in this recording (made by procsnap snapshot, or before "
              "procsnap record kept them)", file=err)
        return 1
    rows = load(rec, wanted, t0, t1, select)
    if as_tree:
        if fmt in ("text", "table"):
            tree_text(rows, sys.stdout)
            write_partial(sys.stdout, "text")
        else:
            cols, data = tree_rows(rows)
            render(cols, data, fmt)
        return 0 if rows else 1
    data = [(r.time, r.host, r.kind, r.pid, r.ppid, r.user if r.user is not None else r.uid, r.command, detail(r))
            for r in rows]
    render(COLUMNS, data, "table" if fmt == "text" else fmt)
    return 0 if rows else 1
