"""CPU (``cpu.saturation``, ``cpu.steal``, ``cpu.iowait``, ``cpu.process``) and processes stuck in
D state (``proc.d_state``): host CPU busy, run queue above the cores, PSI cpu, steal and iowait
(:func:`host_cpu_sql`); the processes that used the most CPU over the window, and those that
kept a whole core busy while seen (:func:`proc_cpu_sql`); runs of snapshots in which a process
had threads in uninterruptible sleep (:func:`d_state_sql`).

The SQL is the text of those functions, written into each finding (``sql``): it runs unchanged
under ``procsnap query --rec DIR`` and gives the rows the finding was made of.
"""

from __future__ import annotations

from collections import defaultdict

from analyze.data.db import Recording
from analyze.commands.report.fmt import fmt_secs
from analyze.commands.report.model import (Finding, SEV_RANK, Window, instance_of, instance_where, lit, procs_filter,
                                           query_rows, severity_of, worst)

CPU_BUSY_WARN, CPU_BUSY_CRIT = 80.0, 90.0            # % of all CPUs, average over the window
RUNQ_OVER_WARN, RUNQ_OVER_CRIT = 0.25, 0.50          # share of samples with run queue > cores
PSI_CPU_WARN = 20.0                                  # % some, average
STEAL_WARN, STEAL_CRIT = 5.0, 20.0                   # % of all CPUs, average
IOWAIT_WARN, IOWAIT_CRIT = 10.0, 30.0                # % of all CPUs, average
PROC_CPU_LIST = 10.0                                 # % of one core over the window to be listed
PROC_CPU_PEGGED = 90.0                               # % of one core while present: a busy core
PROC_CPU_PEGGED_MIN_S = 1.0                          # ... over at least this long
PROC_HOST_WARN, PROC_HOST_CRIT = 25.0, 75.0          # % of all the host's cores over the window
PROC_CPU_TOP = 5
D_STREAK_SNAPSHOTS, D_STREAK_WARN_S, D_STREAK_CRIT_S = 3, 2.0, 60.0


def host_cpu_sql(w: Window, host: str | None = None) -> str:
    h = f" AND host = {lit(host)}" if host else ""
    return f"""/* procsnap report: host CPU over the window (run queue = procs_running - 1, the recorder itself) */
SELECT host, count(*) AS samples, max(ncpus) AS ncpus,
       round(avg(cpu_busy_pct), 1) AS busy_pct_avg, round(max(cpu_busy_pct), 1) AS busy_pct_max,
       round(avg(cpu_iowait_pct), 1) AS iowait_pct_avg, round(max(cpu_iowait_pct), 1) AS iowait_pct_max,
       round(avg(cpu_steal_pct), 1) AS steal_pct_avg, round(max(cpu_steal_pct), 1) AS steal_pct_max,
       round(avg(greatest(procs_running - 1, 0)), 2) AS run_queue_avg, max(greatest(procs_running - 1, 0)) AS run_queue_max,
       round(avg((procs_running - 1 > ncpus)::INTEGER), 2) AS over_cores_share,
       round(avg(psi_cpu_some_pct), 1) AS psi_cpu_some_avg, round(max(load1), 2) AS load1_max,
       arg_max(ts, (cpu_busy_pct, -epoch(ts))) AS busiest_at
FROM system_rates
WHERE cpu_busy_pct IS NOT NULL AND {w.sql()}{h}
GROUP BY host ORDER BY host"""

def proc_cpu_sql(w: Window, instance: dict | None = None) -> str:
    narrow = f" AND {instance_where(instance, 'p')}" if instance else ""
    return f"""/* procsnap report: CPU used per process instance in the window (a process started inside it counts all its CPU) */
WITH w AS (
    SELECT p.* FROM processes p JOIN snapshots s USING (host, snapshot_id)
    WHERE {w.sql('p.ts')} AND {procs_filter()}{narrow}
),
span AS (
    SELECT host, greatest(epoch(max(ts)) - epoch(min(ts)), 1e-9) AS secs, min(ts) AS w_start
    FROM snapshots WHERE {w.sql()} GROUP BY host
),
cores AS (
    SELECT host, max(ncpus) AS ncpus FROM system WHERE {w.sql()} GROUP BY host
),
inst AS (
    SELECT host, boot_id, pid, start_time, arg_max(name, ts) AS name, arg_max("user", ts) AS "user",
           min(ts) AS first_seen, max(ts) AS last_seen, count(*) AS samples,
           arg_min(utime + stime, ts) AS cpu_first, arg_max(utime + stime, ts) AS cpu_last,
           arg_max(cmdline, ts) AS cmdline
    FROM w GROUP BY host, boot_id, pid, start_time
),
peak AS (
    SELECT host, boot_id, pid, start_time, max(cpu_pct) AS peak_cpu_pct
    FROM process_rates WHERE {w.sql()} GROUP BY ALL
),
used AS (
    -- CPU seconds in the window, and the time they were used in: since its start for a process
    -- started inside the window (all its CPU counts), else since it was first seen
    SELECT i.*, i.cpu_last - CASE WHEN i.start_time >= s.w_start THEN 0 ELSE i.cpu_first END AS used_s,
           epoch(i.last_seen) - epoch(CASE WHEN i.start_time >= s.w_start THEN i.start_time ELSE i.first_seen END)
               AS life_s,
           s.secs, c.ncpus
    FROM inst i JOIN span s USING (host) LEFT JOIN cores c USING (host)
)
SELECT u.host, u.boot_id, u.pid, u.start_time, u.name, u."user", u.first_seen, u.last_seen, u.samples,
       round(u.used_s, 2) AS cpu_s,
       round(u.used_s / u.secs * 100, 1) AS avg_cpu_pct,
       round(u.used_s / greatest(u.life_s, 1e-9) * 100, 1) AS present_cpu_pct,
       round(u.life_s, 1) AS life_s,
       -- from its first sample to its last: independent of start_time, whose boot time is in whole seconds
       round((u.cpu_last - u.cpu_first) / greatest(epoch(u.last_seen) - epoch(u.first_seen), 1e-9) * 100, 1)
           AS seen_cpu_pct,
       round((epoch(u.last_seen) - epoch(u.first_seen)) / u.secs, 2) AS present_share,
       u.ncpus, round(u.used_s / (u.secs * u.ncpus) * 100, 1) AS host_cpu_pct,
       round(k.peak_cpu_pct, 1) AS peak_cpu_pct, u.cmdline
FROM used u LEFT JOIN peak k USING (host, boot_id, pid, start_time)
ORDER BY cpu_s DESC, u.pid"""

def d_state_sql(w: Window, instance: dict | None = None) -> str:
    narrow = f" AND {instance_where(instance, 'p')}" if instance else ""
    return f"""/* procsnap report: processes with a thread in uninterruptible sleep (D), longest run of consecutive snapshots */
WITH t AS (
    SELECT host, snapshot_id, pid, count(*) FILTER (WHERE state = 'D') AS d_threads,
           string_agg(DISTINCT name, ',' ORDER BY name) FILTER (WHERE state = 'D') AS d_thread_names
    FROM threads WHERE {w.sql()} GROUP BY ALL
),
ps AS (
    SELECT p.host, p.ts, p.boot_id, p.pid, p.start_time, p.name, p.cmdline,
           coalesce(t.d_threads, (p.state = 'D')::INTEGER) AS d_threads, t.d_thread_names
    FROM processes p JOIN snapshots s USING (host, snapshot_id)
    LEFT JOIN t ON t.host = p.host AND t.snapshot_id = p.snapshot_id AND t.pid = p.pid
    WHERE {w.sql('p.ts')} AND p.pid <> s.recorder_pid{narrow}
),
runs AS (
    SELECT *, row_number() OVER (PARTITION BY host, boot_id, pid, start_time ORDER BY ts)
            - row_number() OVER (PARTITION BY host, boot_id, pid, start_time, d_threads > 0 ORDER BY ts) AS run
    FROM ps
),
streaks AS (
    SELECT host, boot_id, pid, start_time, run, count(*) AS snapshots, min(ts) AS since, max(ts) AS until,
           max(d_threads) AS d_threads, string_agg(DISTINCT d_thread_names, ',' ORDER BY d_thread_names) AS thread_names
    FROM runs WHERE d_threads > 0 GROUP BY ALL
),
names AS (
    SELECT host, boot_id, pid, start_time, arg_max(name, ts) AS name, arg_max(cmdline, ts) AS cmdline, count(*) AS samples
    FROM ps GROUP BY ALL
)
SELECT s.host, s.boot_id, s.pid, s.start_time, any_value(n.name) AS name, any_value(n.cmdline) AS cmdline,
       max(s.snapshots) AS longest_run, arg_max(s.since, (s.snapshots, -epoch(s.since))) AS since, arg_max(s.until, (s.snapshots, -epoch(s.since))) AS until,
       round(max(epoch(s.until) - epoch(s.since)), 1) AS longest_run_s, sum(s.snapshots) AS snapshots_in_d,
       any_value(n.samples) AS samples, max(s.d_threads) AS d_threads_max,
       string_agg(DISTINCT s.thread_names, ',' ORDER BY s.thread_names) AS thread_names
FROM streaks s JOIN names n USING (host, boot_id, pid, start_time)
GROUP BY s.host, s.boot_id, s.pid, s.start_time
ORDER BY longest_run_s DESC, s.pid"""

def _pegged(r: dict) -> bool:
    """A whole core (or more) kept busy for all the time the process was seen, however short
    that was within the window: from its first sample to its last (at least two, at least
    PROC_CPU_PEGGED_MIN_S apart)."""
    seen_s = (r["last_seen"] - r["first_seen"]).total_seconds()
    return (r["seen_cpu_pct"] or 0) >= PROC_CPU_PEGGED and r["samples"] >= 2 and seen_s >= PROC_CPU_PEGGED_MIN_S


def findings(rec: Recording, w: Window, insts: dict) -> list[Finding]:
    """This kind's findings in the window W (INSTS: the process instances in it, by identity)."""
    out: list[Finding] = []
    top_cpu = query_rows(rec, proc_cpu_sql(w))
    cpu_by_host = defaultdict(list)
    for r in top_cpu:
        cpu_by_host[r["host"]].append(r)
    saturated = set()

    for r in query_rows(rec, host_cpu_sql(w)):
        h = r["host"]
        sql = host_cpu_sql(w, h)
        tops = [{"pid": c["pid"], "name": c["name"], "cpu_s": c["cpu_s"], "avg_cpu_pct": c["avg_cpu_pct"]}
                for c in cpu_by_host[h] if (c["avg_cpu_pct"] or 0) >= 1][:3]
        sev = worst(severity_of(r["busy_pct_avg"], CPU_BUSY_WARN, None), severity_of(r["over_cores_share"], RUNQ_OVER_WARN, None),
                     severity_of(r["psi_cpu_some_avg"], PSI_CPU_WARN, None))
        if (r["busy_pct_avg"] or 0) >= CPU_BUSY_CRIT and (r["over_cores_share"] or 0) >= RUNQ_OVER_CRIT:
            sev = "critical"
        if sev:
            saturated.add(h)
            out.append(Finding("bottleneck", "cpu.saturation", sev,
                               f"CPU saturated: {r['busy_pct_avg']}% busy on average (max {r['busy_pct_max']}%), "
                               f"run queue above {r['ncpus']} cores in {r['over_cores_share'] * 100:.0f}% of samples "
                               f"(max {r['run_queue_max']})" + (f", PSI cpu some {r['psi_cpu_some_avg']}%"
                                                                if r["psi_cpu_some_avg"] is not None else "")
                               + (f"; top: {', '.join(t['name'] for t in tops)}" if tops else ""),
                               h, None, r | {"top_processes": tops}, sql, score=r["busy_pct_avg"] or 0))
        sev = severity_of(r["steal_pct_avg"], STEAL_WARN, STEAL_CRIT)
        if sev:
            out.append(Finding("bottleneck", "cpu.steal", sev,
                               f"CPU steal: the hypervisor took {r['steal_pct_avg']}% of the CPUs on average "
                               f"(max {r['steal_pct_max']}%)", h, None, r, sql, score=r["steal_pct_avg"]))
        sev = severity_of(r["iowait_pct_avg"], IOWAIT_WARN, IOWAIT_CRIT)
        if sev:
            out.append(Finding("bottleneck", "cpu.iowait", sev,
                               f"CPU iowait: {r['iowait_pct_avg']}% of the CPUs idle waiting for I/O on average "
                               f"(max {r['iowait_pct_max']}%)", h, None, r, sql, score=r["iowait_pct_avg"]))

    for h, rows in cpu_by_host.items():
        rated = []
        for i, r in enumerate(rows):
            pegged = _pegged(r)
            host_pct = r["host_cpu_pct"]
            if (r["avg_cpu_pct"] or 0) < PROC_CPU_LIST and not pegged:
                continue
            sev = severity_of(host_pct, PROC_HOST_WARN, PROC_HOST_CRIT) or \
                ("warning" if pegged or (h in saturated and i < 3) else "info")
            rated.append((sev, r, pegged))
        rated.sort(key=lambda t: (SEV_RANK[t[0]], -(t[1]["cpu_s"] or 0)))
        for sev, r, pegged in rated[:PROC_CPU_TOP]:
            inst = instance_of(r, insts)
            life = "from its start" if r["start_time"] >= w.start else "while seen"
            why = f" (kept a whole core busy {life}, {fmt_secs(r['life_s'])})" if pegged else ""
            share = f", {r['host_cpu_pct']}% of the host's {r['ncpus']} cores" if r["host_cpu_pct"] is not None else ""
            out.append(Finding("bottleneck", "cpu.process", sev,
                               f"{r['name']} (pid {r['pid']}) used {r['cpu_s']} s of CPU, {r['avg_cpu_pct']}% of one "
                               f"core over the window{share}{why}", h, inst, r, proc_cpu_sql(w, inst),
                               score=r["cpu_s"]))

    for r in query_rows(rec, d_state_sql(w)):
        if r["longest_run"] < D_STREAK_SNAPSHOTS or (r["longest_run_s"] or 0) < D_STREAK_WARN_S:
            continue
        sev = "critical" if r["longest_run_s"] >= D_STREAK_CRIT_S else "warning"
        inst = instance_of(r, insts)
        out.append(Finding("bottleneck", "proc.d_state", sev,
                           f"{r['name']} (pid {r['pid']}) stuck in D state (uninterruptible) for "
                           f"{fmt_secs(r['until'] - r['since'])}, {r['longest_run']} snapshots in a row "
                           f"({r['d_threads_max']} thread(s): {r['thread_names']})",
                           r["host"], inst, r, d_state_sql(w, inst), score=r["longest_run_s"]))
    return out
