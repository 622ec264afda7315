"""Storage I/O (``io.disk``, ``io.pressure``, ``io.process``): disks busy (%util, await:
:func:`disk_sql`), I/O pressure (PSI io: :func:`host_io_sql`), and the processes that moved the
most bytes to and from storage (:func:`proc_io_sql`).

The SQL is the text of those functions, written into each finding (``sql``): it runs unchanged
under ``procsnap query --rec DIR`` and gives the rows the finding was made of.
"""

from __future__ import annotations

from collections import defaultdict

from analyze.data.db import Recording
from analyze.commands.report.fmt import fmt_bytes
from analyze.commands.report.model import (Finding, Window, instance_of, instance_where, lit, procs_filter, query_rows,
                                           severity_of, worst)

DISK_UTIL_WARN, DISK_UTIL_CRIT = 80.0, 95.0          # %util, average
PSI_IO_WARN, PSI_IO_FULL_CRIT = 20.0, 10.0
PROC_IO_LIST = 1 << 20                               # bytes/s to storage, average
PROC_IO_TOP = 5


def disk_sql(w: Window, host: str | None = None, device: str | None = None) -> str:
    narrow = (f" AND host = {lit(host)}" if host else "") + (f" AND device = {lit(device)}" if device else "")
    return f"""/* procsnap report: disk utilisation over the window (devices that did any I/O) */
SELECT host, device, count(*) AS samples, round(avg(util_pct), 1) AS util_pct_avg, round(max(util_pct), 1) AS util_pct_max,
       round(avg(await_ms), 1) AS await_ms_avg, round(avg(read_bps)) AS read_bps_avg, round(avg(write_bps)) AS write_bps_avg,
       arg_max(ts, (util_pct, -epoch(ts))) AS busiest_at
FROM disk_rates
WHERE util_pct IS NOT NULL AND {w.sql()}{narrow}
GROUP BY host, device
HAVING sum(reads_ps + writes_ps) > 0
ORDER BY util_pct_avg DESC"""

def host_io_sql(w: Window, host: str | None = None) -> str:
    h = f" AND host = {lit(host)}" if host else ""
    return f"""/* procsnap report: I/O pressure stall information (PSI) over the window */
SELECT host, count(psi_io_some_pct) AS samples, round(avg(psi_io_some_pct), 1) AS psi_io_some_avg,
       round(max(psi_io_some_pct), 1) AS psi_io_some_max, round(avg(psi_io_full_pct), 1) AS psi_io_full_avg,
       arg_max(ts, (psi_io_some_pct, -epoch(ts))) AS worst_at
FROM system_rates WHERE {w.sql()}{h}
GROUP BY host HAVING count(psi_io_some_pct) > 0"""

def proc_io_sql(w: Window, instance: dict | None = None) -> str:
    narrow = f" AND {instance_where(instance, 'p')}" if instance else ""
    return f"""/* procsnap report: bytes each process instance read from and wrote to storage in the window */
WITH w AS (
    SELECT p.* FROM processes p JOIN snapshots s USING (host, snapshot_id)
    WHERE {w.sql('p.ts')} AND {procs_filter()} AND p.read_bytes IS NOT NULL{narrow}
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
           arg_max(cmdline, ts) AS cmdline, min(ts) AS first_seen, max(ts) AS last_seen,
           arg_max(read_bytes, ts) - arg_min(read_bytes, ts) AS read_in_window, arg_max(read_bytes, ts) AS read_total,
           arg_max(write_bytes, ts) - arg_min(write_bytes, ts) AS write_in_window, arg_max(write_bytes, ts) AS write_total,
           arg_max(rchar, ts) - arg_min(rchar, ts) AS rchar, arg_max(wchar, ts) - arg_min(wchar, ts) AS wchar
    FROM w GROUP BY host, boot_id, pid, start_time
)
SELECT i.host, i.boot_id, i.pid, i.start_time, i.name, i."user", i.first_seen, i.last_seen,
       CASE WHEN i.start_time >= s.w_start THEN i.read_total ELSE i.read_in_window END AS read_bytes,
       CASE WHEN i.start_time >= s.w_start THEN i.write_total ELSE i.write_in_window END AS write_bytes,
       round((CASE WHEN i.start_time >= s.w_start THEN i.read_total + i.write_total
                   ELSE i.read_in_window + i.write_in_window END) / s.secs) AS storage_bps,
       i.rchar, i.wchar, i.cmdline
FROM inst i JOIN span s USING (host)
ORDER BY storage_bps DESC, i.pid"""


def findings(rec: Recording, w: Window, insts: dict) -> list[Finding]:
    """This kind's findings in the window W (INSTS: the process instances in it, by identity)."""
    out: list[Finding] = []
    disk_busy = set()
    for r in query_rows(rec, disk_sql(w)):
        sev = severity_of(r["util_pct_avg"], DISK_UTIL_WARN, DISK_UTIL_CRIT)
        if sev:
            disk_busy.add(r["host"])
            out.append(Finding("bottleneck", "io.disk", sev,
                               f"disk {r['device']} busy {r['util_pct_avg']}% of the time on average (max "
                               f"{r['util_pct_max']}%), average wait {r['await_ms_avg']} ms",
                               r["host"], None, r, disk_sql(w, r["host"], r["device"]), score=r["util_pct_avg"]))
    for r in query_rows(rec, host_io_sql(w)):
        sev = worst(severity_of(r["psi_io_some_avg"], PSI_IO_WARN, None), severity_of(r["psi_io_full_avg"], PSI_IO_FULL_CRIT, None))
        if sev and (r["psi_io_full_avg"] or 0) >= PSI_IO_FULL_CRIT:
            sev = "critical"
        if sev:
            disk_busy.add(r["host"])
            out.append(Finding("bottleneck", "io.pressure", sev,
                               f"I/O pressure: tasks stalled on I/O {r['psi_io_some_avg']}% of the time on average "
                               f"(PSI io some; full {r['psi_io_full_avg']}%)", r["host"], None, r,
                               host_io_sql(w, r["host"]), score=r["psi_io_some_avg"]))
    io_by_host = defaultdict(list)
    for r in query_rows(rec, proc_io_sql(w)):
        io_by_host[r["host"]].append(r)
    for h, rows in io_by_host.items():
        for r in [r for r in rows if (r["storage_bps"] or 0) >= PROC_IO_LIST][:PROC_IO_TOP]:
            inst = instance_of(r, insts)
            out.append(Finding("bottleneck", "io.process", "warning" if h in disk_busy else "info",
                               f"{r['name']} (pid {r['pid']}) moved {fmt_bytes(r['storage_bps'])}/s to and from "
                               f"storage (read {fmt_bytes(r['read_bytes'])}, wrote {fmt_bytes(r['write_bytes'])})",
                               h, inst, r, proc_io_sql(w, inst), score=r["storage_bps"]))
    return out
