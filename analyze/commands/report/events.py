"""Incidents from the events recorded between snapshots (``process_events``, ``kernel_events``):

* ``proc.crash_loop``: one command (same user, name and command line with digits ignored)
  ending with a non-zero status or a signal at least ``CRASH_LOOP_MIN`` (3) times in the window,
  restarted ``CRASH_LOOP_MIN_GAP_S`` (0.1 s) apart or more (the median), with the interval
  between its restarts; critical from ``CRASH_LOOP_CRIT`` (10) failures.
* ``proc.oom_kill``: each process the OOM killer shot (critical), with its RSS in the snapshots
  before the kill (same boot, pid and name), its memory cgroup and that cgroup's limit and usage
  as the kernel printed them with the kill.
* ``proc.killed``: processes killed by a signal, per command and signal, crash-loop members and
  OOM victims aside; a warning for SIGKILL and signals that dump core (SIGSEGV, SIGABRT, SIGBUS,
  SIGILL, SIGFPE...), info for the others (SIGTERM, SIGINT, SIGHUP, SIGPIPE: usually asked for).
* ``proc.exec_storm``: an interval of ``STORM_BUCKET_S`` (10 s) with at least
  ``STORM_MIN_STARTS`` (100) forks + execs and at least ``STORM_FACTOR`` (5) times the host's
  usual rate (the median of its intervals over the recorded span, quiet ones included);
  critical from ``STORM_CRIT_FACTOR`` (20) times.
* ``proc.hung_task``: the kernel's hung-task reports (a task blocked in D state for
  kernel.hung_task_timeout_secs) and soft or hard lockups, per task; critical for lockups and
  from ``HUNG_CRIT_S`` (600 s) blocked.

Events are read by their own ``time`` in the window. Each finding's SQL runs unchanged under
``procsnap query --rec DIR``.
"""

from __future__ import annotations

import signal as _signal

from analyze.data.db import Recording
from analyze.commands.report.fmt import fmt_bytes
from analyze.commands.report.model import Finding, Window, lit, query_rows

CRASH_LOOP_MIN, CRASH_LOOP_CRIT = 3, 10
# Restarts faster than a supervisor's delay (systemd's RestartSec defaults to 100 ms) are a
# script's loop over a failing command (grep, test, readlink), not a service restarting.
CRASH_LOOP_MIN_GAP_S = 0.1
STORM_BUCKET_S, STORM_MIN_STARTS, STORM_FACTOR, STORM_CRIT_FACTOR = 10, 100, 5.0, 20.0
HUNG_CRIT_S = 600
CORE_SIGNALS = {_signal.SIGQUIT, _signal.SIGILL, _signal.SIGTRAP, _signal.SIGABRT, _signal.SIGBUS, _signal.SIGFPE,
                _signal.SIGSEGV, _signal.SIGSYS, _signal.SIGXCPU, _signal.SIGXFSZ}
KINDS = ("proc.oom_kill", "proc.crash_loop", "proc.hung_task", "proc.exec_storm", "proc.killed", "recorder.incident")


def _sig(n) -> str:
    try:
        return _signal.Signals(n).name
    except (ValueError, TypeError):
        return f"signal {n}"


def exits_sql(w: Window, failed_only: bool = True) -> str:
    """Exits in the window (the process_exits view: each with its exec and fork), with the user
    name and the command's identity (its command line with digits ignored)."""
    cond = " AND (signal IS NOT NULL OR exit_status <> 0)" if failed_only else ""
    return f"""users AS (SELECT uid, any_value("user") AS "user" FROM processes WHERE "user" IS NOT NULL GROUP BY uid),
ex AS (
    SELECT x.host, x.boot_id, x.pid, x.ppid, x.time, x.name, x.uid, x.cmdline, x.started, x.start_time,
           x.exit_status, x.signal, x.core_dumped, u."user",
           regexp_replace(coalesce(x.cmdline, x.name, ''), '[0-9]+', 'N', 'g') AS ident
    FROM process_exits x LEFT JOIN users u ON u.uid = x.uid
    WHERE {w.sql('x.time')}{cond}
)"""


def _loops_cte(w: Window) -> str:
    """The crash loops: failed exits of one command (host, user, name, command line with digits
    ignored) at least CRASH_LOOP_MIN times, restarted no faster than CRASH_LOOP_MIN_GAP_S apart."""
    return f"""{exits_sql(w)},
g AS (
    SELECT *, epoch(started) - epoch(lag(started) OVER (PARTITION BY host, uid, name, ident ORDER BY started))
              AS restart_gap_s
    FROM ex
),
loops AS (
    SELECT host, uid, name, ident, count(*) AS failures, min(time) AS first, max(time) AS last,
           string_agg(DISTINCT coalesce('status ' || exit_status, 'signal ' || signal), ', ' ORDER BY
                      coalesce('status ' || exit_status, 'signal ' || signal)) AS how,
           round(median(restart_gap_s), 1) AS restart_every_s, round(min(restart_gap_s), 1) AS restart_min_s,
           round(max(restart_gap_s), 1) AS restart_max_s, arg_max(pid, time) AS pid, list(pid ORDER BY time) AS pids,
           arg_max(cmdline, time) AS cmdline, arg_max("user", time) AS "user", max(started) AS last_start,
           arg_max(boot_id, time) AS boot_id, arg_max(start_time, time) AS start_time
    FROM g GROUP BY host, uid, name, ident
    HAVING count(*) >= {CRASH_LOOP_MIN} AND median(restart_gap_s) >= {CRASH_LOOP_MIN_GAP_S}
)"""


def crash_loop_sql(w: Window, host: str | None = None, ident: str | None = None) -> str:
    h = f" AND host = {lit(host)}" if host else ""
    i = f" AND ident = {lit(ident)}" if ident is not None else ""
    return f"""/* procsnap report: commands ending with a non-zero status or a signal {CRASH_LOOP_MIN} times or more,
   restarted {CRASH_LOOP_MIN_GAP_S:g} s apart or more (crash loops), with the seconds between their restarts */
WITH {_loops_cte(w)}
SELECT * FROM loops WHERE true{h}{i}
ORDER BY failures DESC, host, name"""


def killed_sql(w: Window, host: str | None = None) -> str:
    h = f" AND ex.host = {lit(host)}" if host else ""
    return f"""/* procsnap report: processes killed by a signal, per command and signal (crash loops and the OOM
   killer's victims aside: they have their own findings) */
WITH {_loops_cte(w)}
SELECT ex.host, ex.name, ex.signal, count(*) AS processes, bool_or(ex.core_dumped) AS core_dumped,
       min(ex.time) AS first, max(ex.time) AS last, arg_max(ex.pid, ex.time) AS pid, list(ex.pid ORDER BY ex.time) AS pids,
       arg_max(ex.cmdline, ex.time) AS cmdline, arg_max(ex."user", ex.time) AS "user",
       arg_max(ex.started, ex.time) AS last_start, arg_max(ex.boot_id, ex.time) AS boot_id,
       arg_max(ex.start_time, ex.time) AS start_time
FROM ex
WHERE ex.signal IS NOT NULL{h}
  AND NOT EXISTS (SELECT 1 FROM loops l WHERE l.host = ex.host AND l.uid IS NOT DISTINCT FROM ex.uid
                  AND l.name IS NOT DISTINCT FROM ex.name AND l.ident = ex.ident)
  AND NOT EXISTS (SELECT 1 FROM kernel_events k WHERE k.kind = 'oom_kill' AND k.host = ex.host
                  AND k.boot_id = ex.boot_id AND k.pid = ex.pid AND k.time <= ex.time)
GROUP BY ex.host, ex.name, ex.signal ORDER BY processes DESC, ex.host, ex.name"""


def oom_sql(w: Window, host: str | None = None) -> str:
    h = f" AND host = {lit(host)}" if host else ""
    return f"""/* procsnap report: processes the OOM killer shot, with their RSS in the snapshots before the kill
   (processes of the same boot, pid and name, before the kill) */
WITH k AS (SELECT * FROM kernel_events WHERE kind = 'oom_kill' AND {w.sql('time')}{h}),
before AS (
    SELECT k.host, k.boot_id, k.seq, count(*) AS samples, min(p.ts) AS first_seen, max(p.ts) AS last_seen,
           arg_min(p.rss, p.ts) AS first_rss, arg_max(p.rss, p.ts) AS last_rss, max(p.rss) AS peak_rss,
           arg_max(p.start_time, p.ts) AS start_time, arg_max(p.cmdline, p.ts) AS cmdline,
           arg_max(p."user", p.ts) AS "user", arg_max(p.ppid, p.ts) AS ppid, arg_max(p.exe, p.ts) AS exe
    FROM k JOIN processes p ON p.host = k.host AND p.boot_id = k.boot_id AND p.pid = k.pid AND p.ts <= k.time
         AND p.name = k.comm
    GROUP BY ALL
)
SELECT k.host, k.boot_id, k.time, k.pid, k.comm, k.uid, k.cgroup, k.task_cgroup, k.oom_constraint,
       k.memory_limit AS cgroup_limit, k.memory_usage AS cgroup_usage,
       k.anon_rss + coalesce(k.file_rss, 0) + coalesce(k.shmem_rss, 0) AS rss_at_kill, k.anon_rss, k.total_vm,
       b.samples, b.first_seen, b.first_rss, b.last_seen, b.last_rss, b.peak_rss, b.start_time, b.cmdline,
       b."user", b.ppid, b.exe
FROM k LEFT JOIN before b USING (host, boot_id, seq)
ORDER BY k.time"""


def storm_sql(w: Window, host: str | None = None) -> str:
    h = f" AND host = {lit(host)}" if host else ""
    b = STORM_BUCKET_S
    return f"""/* procsnap report: intervals of {b} s with at least {STORM_MIN_STARTS} forks + execs and {STORM_FACTOR:g}
   times the host's usual (median) rate over the recorded span */
WITH counted AS (
    SELECT host, time_bucket(INTERVAL {b} SECOND, time) AS bucket, count(*) FILTER (kind = 'fork') AS forks,
           count(*) FILTER (kind = 'exec') AS execs, mode(name) FILTER (kind = 'exec') AS top_command
    FROM process_events WHERE kind IN ('fork', 'exec') AND {w.sql('time')}{h} GROUP BY ALL
),
spans AS (
    SELECT host, time_bucket(INTERVAL {b} SECOND, min(ts)) AS first, max(ts) AS last
    FROM snapshots WHERE {w.sql('ts')} AND host IN (SELECT host FROM counted) GROUP BY host
),
all_b AS (
    SELECT s.host, g.bucket, coalesce(c.forks, 0) AS forks, coalesce(c.execs, 0) AS execs, c.top_command
    FROM spans s, LATERAL (SELECT unnest(generate_series(s.first, s.last, INTERVAL {b} SECOND)) AS bucket) g
    LEFT JOIN counted c ON c.host = s.host AND c.bucket = g.bucket
    UNION ALL
    SELECT c.* FROM counted c JOIN spans s USING (host) WHERE c.bucket > s.last OR c.bucket < s.first
),
usual AS (SELECT host, median((forks + execs) / {b}) AS usual_per_s FROM all_b GROUP BY host)
SELECT a.host, a.bucket AS interval_start, a.forks, a.execs, round((a.forks + a.execs) / {b}, 1) AS starts_per_s,
       round(u.usual_per_s, 1) AS usual_per_s,
       round((a.forks + a.execs) / {b} / greatest(u.usual_per_s, 0.1), 1) AS times_usual, a.top_command
FROM all_b a JOIN usual u USING (host)
WHERE a.forks + a.execs >= {STORM_MIN_STARTS} AND (a.forks + a.execs) / {b} >= {STORM_FACTOR} * u.usual_per_s
ORDER BY starts_per_s DESC, a.host, a.bucket"""


def hung_sql(w: Window, host: str | None = None) -> str:
    h = f" AND host = {lit(host)}" if host else ""
    return f"""/* procsnap report: hung tasks and soft/hard lockups the kernel reported, per task (or CPU) and kind */
SELECT host, kind, pid, comm, count(*) AS reports, max(seconds) AS seconds_max, min(time) AS first,
       max(time) AS last, list(DISTINCT cpu) FILTER (cpu IS NOT NULL) AS cpus, arg_max(text, time) AS text,
       arg_max(boot_id, time) AS boot_id, arg_max(start_time, time) AS start_time
FROM kernel_events WHERE kind IN ('hung_task', 'soft_lockup', 'hard_lockup') AND {w.sql('time')}{h}
GROUP BY host, kind, pid, comm ORDER BY last"""


def _who(r: dict) -> dict:
    return {"host": r["host"], "pid": r.get("pid"), "name": r.get("name") or r.get("comm"),
            "user": r.get("user") if r.get("user") is not None else r.get("uid"),
            "start_time": r.get("start_time") or r.get("first") or r.get("time"), "cmdline": r.get("cmdline"),
            "boot_id": r.get("boot_id"), "ppid": r.get("ppid"), "exe": r.get("exe"),
            "first_seen": r.get("first_seen"), "last_seen": r.get("last_seen")}


def _charted(rec: Recording, w: Window, r: dict) -> dict | None:
    """The finding's process when snapshots saw it in the window (its rows in processes: the HTML
    page charts it), else None: a process that lived between two snapshots is named by the
    finding's title and evidence (last_pid, command_line) only."""
    if r.get("pid") is None or r.get("start_time") is None:
        return None
    seen = query_rows(rec, f"""SELECT count(*) AS n FROM processes WHERE {w.sql()} AND host = {lit(r['host'])}
        AND boot_id IS NOT DISTINCT FROM {lit(r.get('boot_id'))} AND pid = {r['pid']}
        AND start_time = {lit(r['start_time'])}""")
    return _who(r) if seen and seen[0]["n"] else None


def _gone(r: dict) -> dict:
    return {"last_pid": r.get("pid"), "command_line": r.get("cmdline")}


def recorded(rec: Recording) -> bool:
    return bool(rec.files.get("process_events") or rec.files.get("kernel_events"))


def incidents_sql(w: Window, host: str | None = None) -> str:
    """The incident preset's runs (the named query `incidents`) that started in the window."""
    from analyze.data.named import get_query
    h = f" AND host = {lit(host)}" if host else ""
    return (f"/* procsnap report: when the recorder took the incident preset, why, and for how long */\n"
            f"SELECT * FROM (\n{get_query('incidents').sql.strip()}\n) WHERE {w.sql('started')}{h}")


def _incident_findings(rec: Recording, w: Window) -> list[Finding]:
    out = []
    for r in query_rows(rec, incidents_sql(w)):
        title = (f"incident preset at {r['started']:%H:%M:%S} for {r['lasted_s']:g} s "
                 f"({r['snapshots']} snapshots"
                 + (f", {r['ring_frames']} pre-trigger frames from {r['ring_from']:%H:%M:%S}" if r["ring_frames"] else "")
                 + f"): {r['reason'] or '?'}")
        ev = {k: r[k] for k in ("started", "last_snapshot", "snapshots", "lasted_s", "reason", "firings",
                                "ring_frames", "ring_from")}
        out.append(Finding("incident", "recorder.incident", "info", title, r["host"], None, ev,
                           incidents_sql(w, r["host"]), score=r["lasted_s"]))
    return out


def findings(rec: Recording, w: Window, insts: dict) -> list[Finding]:
    """This kind's findings in the window W."""
    out: list[Finding] = _incident_findings(rec, w)
    if not recorded(rec):
        return out
    for r in query_rows(rec, crash_loop_sql(w)):
        sev = "critical" if r["failures"] >= CRASH_LOOP_CRIT else "warning"
        every = f", restarting every {r['restart_every_s']:g} s" if r["restart_every_s"] is not None else ""
        title = (f"crash loop: {r['name']} ended {r['failures']} times with {r['how']}{every} "
                 f"({r['first']:%H:%M:%S} .. {r['last']:%H:%M:%S})")
        ev = {k: r[k] for k in ("failures", "first", "last", "how", "restart_every_s", "restart_min_s",
                                "restart_max_s", "uid")} | {"last_pids": r["pids"][-20:]} | _gone(r)
        out.append(Finding("incident", "proc.crash_loop", sev, title, r["host"], _charted(rec, w, r), ev,
                           crash_loop_sql(w, r["host"], r["ident"]), score=r["failures"]))
    for r in query_rows(rec, oom_sql(w)):
        hist = ""
        if r["samples"]:
            hist = (f"; RSS {fmt_bytes(r['first_rss'])} at {r['first_seen']:%H:%M:%S} → {fmt_bytes(r['last_rss'])} "
                    f"at {r['last_seen']:%H:%M:%S} in {r['samples']} snapshots before")
        where = " (the whole host's memory)"
        if r["cgroup"]:
            limit = f", limit {fmt_bytes(r['cgroup_limit'])}" if r["cgroup_limit"] is not None else ""
            where = f" in memory cgroup {r['cgroup']}{limit}"
        title = (f"OOM kill: {r['comm']} (pid {r['pid']}) at {r['time']:%H:%M:%S}{where}, "
                 f"{fmt_bytes(r['rss_at_kill'])} resident when killed{hist}")
        ev = {k: r[k] for k in ("time", "oom_constraint", "cgroup", "task_cgroup", "rss_at_kill", "anon_rss",
                                "total_vm", "samples", "first_seen", "first_rss", "last_seen", "last_rss",
                                "peak_rss", "cgroup_usage")} \
            | {"cgroup_limit": r["cgroup_limit"] if r["cgroup_limit"] is not None
               else ("none: the whole host's memory ran out" if not r["cgroup"]
                     else "not recorded (the kernel's memory: usage/limit record was not read)")}
        out.append(Finding("incident", "proc.oom_kill", "critical", title, r["host"], _charted(rec, w, r),
                           ev | _gone(r),
                           oom_sql(w, r["host"]), score=r["rss_at_kill"] or 0))
    for r in query_rows(rec, killed_sql(w)):
        n = r["processes"]
        sev = "warning" if r["signal"] == _signal.SIGKILL or r["signal"] in CORE_SIGNALS else "info"
        core = ", core dumped" if r["core_dumped"] else ""
        title = (f"killed by {_sig(r['signal'])}: {r['name']} ({n} process{'es' if n > 1 else ''}"
                 f"{core}, last at {r['last']:%H:%M:%S})")
        ev = {k: r[k] for k in ("signal", "processes", "core_dumped", "first", "last")} \
            | {"last_pids": r["pids"][-20:]} | _gone(r)
        out.append(Finding("incident", "proc.killed", sev, title, r["host"], _charted(rec, w, r), ev,
                           killed_sql(w, r["host"]),
                           score=n))
    for r in query_rows(rec, storm_sql(w)):
        sev = "critical" if r["times_usual"] >= STORM_CRIT_FACTOR else "warning"
        title = (f"fork/exec storm: {r['starts_per_s']:g} process starts/s at {r['interval_start']:%H:%M:%S} "
                 f"({r['times_usual']:g}x the host's usual {r['usual_per_s']:g}/s), mostly {r['top_command']}")
        out.append(Finding("incident", "proc.exec_storm", sev, title, r["host"], None, r, storm_sql(w, r["host"]),
                           score=r["starts_per_s"]))
    for r in query_rows(rec, hung_sql(w)):
        lockup = r["kind"] != "hung_task"
        sev = "critical" if lockup or (r["seconds_max"] or 0) >= HUNG_CRIT_S else "warning"
        what = {"hung_task": "hung task", "soft_lockup": "soft lockup", "hard_lockup": "hard lockup"}[r["kind"]]
        secs = f" for {r['seconds_max']} s" if r["seconds_max"] is not None else ""
        who = f"{r['comm']} (pid {r['pid']})" if r["pid"] is not None else f"CPU {', '.join(map(str, r['cpus'] or []))}"
        title = f"{what}: {who} blocked{secs}, {r['reports']} report(s), last at {r['last']:%H:%M:%S}"
        out.append(Finding("incident", "proc.hung_task", sev, title, r["host"], _charted(rec, w, r), r,
                           hung_sql(w, r["host"]),
                           score=r["seconds_max"] or 0))
    return out
