"""Context switches (``ctxsw.host``, ``ctxsw.process``): a storm per CPU on the host
(:func:`ctxsw_host_sql`) and the processes switching the most (:func:`ctxsw_proc_sql`).

The SQL is the text of those functions, written into each finding (``sql``): it runs unchanged
under ``procsnap query --rec DIR`` and gives the rows the finding was made of.
"""

from __future__ import annotations

from collections import defaultdict

from analyze.data.db import Recording
from analyze.commands.report.model import (Finding, Window, instance_of, instance_where, lit, procs_filter, query_rows,
                                           severity_of)

CTXSW_HOST_WARN, CTXSW_HOST_CRIT = 50_000.0, 150_000.0   # per CPU per second, average
CTXSW_PROC_WARN = 20_000.0                               # per second, average over the window
CTXSW_PROC_TOP = 3


def ctxsw_host_sql(w: Window, host: str | None = None) -> str:
    h = f" AND host = {lit(host)}" if host else ""
    return f"""/* procsnap report: host context switches per second and per CPU */
SELECT host, count(ctxt_ps) AS samples, max(ncpus) AS ncpus, round(avg(ctxt_ps)) AS ctxt_ps_avg,
       round(max(ctxt_ps)) AS ctxt_ps_max, round(avg(ctxt_ps / ncpus)) AS per_cpu_avg, arg_max(ts, (ctxt_ps, -epoch(ts))) AS worst_at
FROM system_rates WHERE ctxt_ps IS NOT NULL AND {w.sql()}{h}
GROUP BY host ORDER BY host"""

def ctxsw_proc_sql(w: Window, instance: dict | None = None) -> str:
    narrow = f" AND {instance_where(instance, 'p')}" if instance else ""
    return f"""/* procsnap report: context switches per second of each process instance over the window */
WITH w AS (
    SELECT p.* FROM processes p JOIN snapshots s USING (host, snapshot_id)
    WHERE {w.sql('p.ts')} AND {procs_filter()} AND p.ctxsw_voluntary IS NOT NULL{narrow}
),
inst AS (
    SELECT host, boot_id, pid, start_time, arg_max(name, ts) AS name, arg_max(cmdline, ts) AS cmdline, count(*) AS samples,
           greatest(epoch(max(ts)) - epoch(min(ts)), 1e-9) AS secs,
           arg_max(ctxsw_voluntary, ts) - arg_min(ctxsw_voluntary, ts) AS voluntary,
           arg_max(ctxsw_involuntary, ts) - arg_min(ctxsw_involuntary, ts) AS involuntary
    FROM w GROUP BY host, boot_id, pid, start_time
)
SELECT host, boot_id, pid, start_time, name, samples, round(secs, 1) AS secs, voluntary, involuntary,
       round((voluntary + involuntary) / secs) AS per_s, round(involuntary * 100.0 / nullif(voluntary + involuntary, 0), 1)
           AS involuntary_pct, cmdline
FROM inst WHERE samples >= 2
ORDER BY per_s DESC, pid"""


def findings(rec: Recording, w: Window, insts: dict) -> list[Finding]:
    """This kind's findings in the window W (INSTS: the process instances in it, by identity)."""
    out: list[Finding] = []
    for r in query_rows(rec, ctxsw_host_sql(w)):
        sev = severity_of(r["per_cpu_avg"], CTXSW_HOST_WARN, CTXSW_HOST_CRIT)
        if sev:
            out.append(Finding("bottleneck", "ctxsw.host", sev,
                               f"context-switch storm: {r['ctxt_ps_avg']:,.0f}/s on average ({r['per_cpu_avg']:,.0f} "
                               f"per CPU, max {r['ctxt_ps_max']:,.0f}/s)", r["host"], None, r,
                               ctxsw_host_sql(w, r["host"]), score=r["per_cpu_avg"]))
    per_host = defaultdict(int)
    for r in query_rows(rec, ctxsw_proc_sql(w)):
        if (r["per_s"] or 0) < CTXSW_PROC_WARN or per_host[r["host"]] >= CTXSW_PROC_TOP:
            continue
        per_host[r["host"]] += 1
        inst = instance_of(r, insts)
        out.append(Finding("bottleneck", "ctxsw.process", "warning",
                           f"{r['name']} (pid {r['pid']}) switched context {r['per_s']:,.0f} times a second "
                           f"({r['involuntary_pct']}% involuntary: preempted)", r["host"], inst, r,
                           ctxsw_proc_sql(w, inst), score=r["per_s"]))
    return out
