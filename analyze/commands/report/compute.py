"""A report's run: the window asked, the window's rows cached once, every rule's findings ranked,
and the notes on what the recording could not say."""

from __future__ import annotations

import contextlib
from collections import defaultdict

from recorder.schema import TABLES

from analyze.commands.diff import identity
from analyze.data.db import Recording
from analyze.data.timespec import check_window
from analyze.errors import ProcsnapError
from analyze.commands.report.leaks import LEAK_MIN_SAMPLES, instances_sql, leak_findings, leak_sql
from analyze.commands.report.model import SEVERITIES, Window, lit, query_rows, rank, ts_sql
from analyze.commands.report.sockets import EPHEMERAL_HIGH, EPHEMERAL_LOW
from analyze.commands.report import cpu, ctxsw, descriptors, events, io, memory, sockets, waits
from analyze.commands.report import host as host_rules
from analyze.commands.report.fleet import view as fleet_view
from analyze.data.remote import shown

# Tables the report reads through their views once the window's cache is gone (see run).
UNCACHED = ("process_events", "kernel_events")
# Tables of a row per process, thread or descriptor and snapshot, never copied into the window's
# cache: each query reads them through their views (see _window_cache).
PER_PROCESS = ("processes", "threads", "open_files", "sockets")

# The rule modules of the bottlenecks and the host, in the order their findings are made.
RULES = (cpu, io, memory, descriptors, sockets, ctxsw, host_rules, waits)


def window(rec: Recording, at_from: str | None, at_to: str | None) -> Window:
    start, end = rec.time_range()
    if start is None:
        raise ProcsnapError("the recording has no snapshots")
    a = rec.resolve_time(at_from) if at_from else start
    b = rec.resolve_time(at_to, last=True) if at_to else end
    check_window(a, b)
    return Window(a, b)

@contextlib.contextmanager
def _window_cache(rec: Recording, w: Window):
    """While the report is computed, temporary tables named like the views
    hold the window and the snapshot just before it (so the rates of the
    window's first snapshot are what the views give), so that each of the
    report's queries does not scan every Parquet file again. The SQL is the
    same and gives the same answers over the views: what a finding's SQL
    prints under `procsnap query` is what the report computed.

    The PER_PROCESS tables are left to their views: a copy holds every
    column of every row of the window in memory (DuckDB does not spill
    here), while a query over a view reads only the columns it names and
    the row groups its window and host keep."""
    db = rec.query("SELECT current_database()")[1][0][0]
    made = []
    lo = (f"WITH lo AS (SELECT host, coalesce(max(ts) FILTER (WHERE ts < {ts_sql(w.start)}), min(ts)) AS lo "
          f"FROM {db}.main.snapshots GROUP BY host)")
    try:
        # snapshots last: the other views read it
        for name in [t for t in TABLES if t not in ("snapshots", *UNCACHED, *PER_PROCESS)] + ["snapshots"]:
            rec.query(f"CREATE TEMP TABLE {name} AS {lo} SELECT t.* FROM {db}.main.{name} t JOIN lo USING (host) "
                      f"WHERE t.ts >= lo.lo AND t.ts <= {ts_sql(w.end)}")
            made.append(name)
        yield
    finally:
        for name in made:
            rec.query(f"DROP TABLE IF EXISTS temp.main.{name}")

def run(rec: Recording, at_from: str | None = None, at_to: str | None = None) -> dict:
    w = window(rec, at_from, at_to)
    with _window_cache(rec, w):
        result = _run(rec, w)
    # The incidents are read by the events' own time, over the views: an event of the window
    # may be written with a snapshot after it, its process's fork and exec with one before it.
    incidents = events.findings(rec, w, {})
    if incidents:
        result["findings"] = rank(result["findings"] + incidents)
        result["summary"]["incidents"] = len(incidents)
        for s in SEVERITIES:
            result["summary"][s] = sum(f.severity == s for f in result["findings"])
    return result

def _run(rec: Recording, w: Window) -> dict:
    snaps = query_rows(rec, f"SELECT host, count(*) AS snapshots, min(ts) AS first, max(ts) AS last, "
                       f"sum(processes_denied) AS processes_denied, sum(open_files_denied) AS open_files_denied, "
                       f"sum(skipped) AS skipped FROM snapshots WHERE {w.sql()} GROUP BY host ORDER BY host")
    if not snaps:
        raise ProcsnapError(f"no snapshots between {w.start:%Y-%m-%d %H:%M:%S} and {w.end:%Y-%m-%d %H:%M:%S} UTC")
    inst_rows = query_rows(rec, instances_sql(w))
    insts = {(r["host"], r["boot_id"], r["pid"], r["start_time"]): r for r in inst_rows}
    fits = query_rows(rec, leak_sql(w))
    # identities with more than one instance in the window, numbered
    groups = defaultdict(list)
    for r in inst_rows:
        if r["pid"] == 2 or r["ppid"] == 2:
            continue
        groups[(r["host"], identity(r["exe"], r["name"], r["cmdline"], r["cgroup"], r["user"]))].append(r)
    members, ident_of, flat = {}, {}, []
    for i, ((host, ident), rows) in enumerate(sorted(((k, v) for k, v in groups.items() if len(v) > 1),
                                                     key=lambda kv: (kv[0][0], str(kv[0][1]))), start=1):
        members[i] = [r | {"identity": i} for r in rows]
        ident_of[i] = ident
        flat += members[i]
    pooled = query_rows(rec, leak_sql(w, members=flat)) if flat else []
    findings = leak_findings(rec, w, inst_rows, fits, pooled, members, ident_of)
    for rule in RULES:
        findings += rule.findings(rec, w, insts)
    findings = rank(findings)
    notes = []
    for s in snaps:
        if s["snapshots"] < LEAK_MIN_SAMPLES:
            notes.append(f"{s['host']}: {s['snapshots']} snapshots in the window; leak detection needs at least "
                         f"{LEAK_MIN_SAMPLES}")
        if s["processes_denied"]:
            notes.append(denied_note(rec, w, s["host"], s["processes_denied"]))
        if s["skipped"]:
            notes.append(f"{s['host']}: {s['skipped']} snapshots were skipped because collection overran the interval")
    notes.append(f"ephemeral ports are compared with the kernel's default range {EPHEMERAL_LOW}-{EPHEMERAL_HIGH}, "
                 "and listen queues without their backlog: neither is recorded")
    return {
        "recording": {"sources": [shown(s) for s in rec.sources],
                      "hosts": [{"host": s["host"], "snapshots": s["snapshots"], "first": s["first"],
                                 "last": s["last"]} for s in snaps]},
        "window": {"from": w.start, "to": w.end, "seconds": round(w.seconds, 3),
                   "snapshots": sum(s["snapshots"] for s in snaps)},
        "events": events.recorded(rec),
        "summary": {"leaks": sum(f.category == "leak" for f in findings),
                    "bottlenecks": sum(f.category == "bottleneck" for f in findings),
                    "incidents": sum(f.category == "incident" for f in findings),
                    **{s: sum(f.severity == s for f in findings) for s in SEVERITIES}},
        "findings": findings,
        "fleet": fleet_view(findings, inst_rows, [s["host"] for s in snaps]),
        "notes": notes,
    }

def denied_sql(w: Window, host: str) -> str:
    return f"""/* procsnap report: the process fields the kernel refused to the recorder (processes.denied), per process
   instance, and who the recorder ran as (its own row in processes; NULL where the recording lacks it) */
WITH recorder AS (
    SELECT list(DISTINCT p.uid ORDER BY p.uid) AS uids, list(DISTINCT p."user" ORDER BY p."user") AS users
    FROM processes p JOIN snapshots s USING (host, snapshot_id)
    WHERE {w.sql('p.ts')} AND p.host = {lit(host)} AND p.pid = s.recorder_pid
),
d AS (
    SELECT p.boot_id, p.pid, p.start_time, arg_max(p.name, p.ts) AS name, arg_max(p.uid, p.ts) AS uid,
           arg_max(p."user", p.ts) AS "user", bool_or(p.pid = 2 OR p.ppid = 2) AS kernel_thread,
           count(DISTINCT p.snapshot_id) AS rows, list(DISTINCT src ORDER BY src) AS sources
    FROM processes p JOIN snapshots s USING (host, snapshot_id), unnest(string_split(p.denied, ',')) AS t(src)
    WHERE {w.sql('p.ts')} AND p.host = {lit(host)} AND p.denied IS NOT NULL AND p.pid <> s.recorder_pid
    GROUP BY ALL
)
SELECT d.*, r.uids AS recorder_uids, r.users AS recorder_users FROM d, recorder r ORDER BY d.pid, d.start_time"""

def denied_note(rec: Recording, w: Window, host: str, rows_denied: int) -> str:
    """What the kernel refused, to whom and the likely why: root is only the remedy when the
    recorder did not run as root (its own process row says who it ran as)."""
    rows = query_rows(rec, denied_sql(w, host))
    uids = [u for u in ((rows[0]["recorder_uids"] if rows else None) or []) if u is not None]
    users = (rows[0]["recorder_users"] if rows else None) or []
    as_root = bool(uids) and set(uids) == {0}
    by_source = defaultdict(int)
    for r in rows:
        for src in r["sources"]:
            by_source[src] += 1

    def some(procs: list[dict]) -> str:
        named = [f"{r['name']} (pid {r['pid']})" for r in procs[:3]]
        return ", ".join(named) + (f" and {len(procs) - 3} more" if len(procs) > 3 else "")

    kernel, others, same = [], [], []
    for r in rows:
        if r["kernel_thread"] and (as_root or not uids):
            kernel.append(r)  # to a recorder that is not root, kernel threads are root's like any other
        elif uids and r["uid"] not in uids:
            others.append(r)
        else:
            same.append(r)
    what = ", ".join(f"{src} {n}" for src, n in sorted(by_source.items(), key=lambda kv: (-kv[1], kv[0])))
    head = (f"{host}: the kernel refused fields of {len(rows)} process(es) to the recorder in {rows_denied} "
            f"rows (left NULL; processes per source: {what})")
    parts = []
    if kernel:
        parts.append(f"kernel threads ({some(kernel)}) are the kernel's own: it does not give their exe, maps "
                     "or io to anyone, root included")
    if as_root:
        if others or same:
            parts.append(f"the recorder ran as root, and root is refused too ({some(others + same)}): reading "
                         "another process's exe, cwd, root, fd, maps or io needs ptrace access, which root lacks "
                         "without CAP_SYS_PTRACE (in a container or a restricted service), for a process of "
                         "another user namespace (pid 1 of a container seen from inside it) or under Yama or "
                         "lockdown; running as root again would not show them")
    elif uids:
        who = ", ".join(f"uid {u} ({n})" for u, n in zip(uids, users))
        if others:
            parts.append(f"the recorder ran as {who}: processes of other users ({some(others)}) keep their "
                         "exe, cwd, fd, maps and io from it; run the recorder as root to see them")
        if same:
            parts.append(f"its own user's processes ({some(same)}) were refused too: ptrace access denied "
                         "(not dumpable, or another user namespace); root with CAP_SYS_PTRACE reads them")
    elif others or same:
        parts.append(f"who ran the recorder is not in the recording (its own process row is not in the window) "
                     f"for {some(others + same)}: if it was not root, root sees other users' processes; root "
                     "itself is refused where it lacks ptrace access (no CAP_SYS_PTRACE, another user namespace)")
    return head + ("; " + "; ".join(parts) if parts else "")
