"""Memory pressure (``memory.pressure``): the lowest MemAvailable, swapping, PSI memory and OOM
kills over the window (:func:`memory_sql`).

The SQL is the text of those functions, written into each finding (``sql``): it runs unchanged
under ``procsnap query --rec DIR`` and gives the rows the finding was made of.
"""

from __future__ import annotations

from analyze.data.db import Recording
from analyze.commands.report.fmt import fmt_bytes
from analyze.commands.report.model import Finding, Window, lit, query_rows, severity_of, worst

MEM_AVAIL_WARN, MEM_AVAIL_CRIT = 10.0, 5.0           # lowest MemAvailable, % of MemTotal
SWAP_PAGES_WARN, SWAP_PAGES_CRIT = 100.0, 1000.0     # pages swapped in + out per second, average
PSI_MEM_WARN, PSI_MEM_FULL_CRIT = 10.0, 10.0


def memory_sql(w: Window, host: str | None = None) -> str:
    h = f" AND host = {lit(host)}" if host else ""
    return f"""/* procsnap report: memory pressure over the window (swap in pages/s; PSI where the kernel has it) */
SELECT host, count(*) AS samples, max(mem_total) AS mem_total,
       min(mem_available) AS available_min, arg_min(ts, (mem_available, ts)) AS available_min_at,
       round(min(mem_available) * 100.0 / max(mem_total), 1) AS available_min_pct,
       max(swap_total - swap_free) AS swap_used_max,
       round(avg(pswpin_ps + pswpout_ps), 1) AS swap_pages_ps_avg,
       round(max(pswpin_ps + pswpout_ps), 1) AS swap_pages_ps_max,
       round(avg(psi_memory_some_pct), 1) AS psi_memory_some_avg, round(max(psi_memory_some_pct), 1) AS psi_memory_some_max,
       round(avg(psi_memory_full_pct), 1) AS psi_memory_full_avg,
       coalesce(sum(oom_kills), 0) AS oom_kills, round(avg(pgmajfault_ps), 1) AS major_faults_ps_avg
FROM system_rates WHERE {w.sql()}{h}
GROUP BY host ORDER BY host"""


def findings(rec: Recording, w: Window, insts: dict) -> list[Finding]:
    """This kind's findings in the window W (INSTS: the process instances in it, by identity)."""
    out: list[Finding] = []
    for r in query_rows(rec, memory_sql(w)):
        sev = worst(severity_of(r["available_min_pct"], MEM_AVAIL_WARN, MEM_AVAIL_CRIT, higher=False),
                     severity_of(r["swap_pages_ps_avg"], SWAP_PAGES_WARN, SWAP_PAGES_CRIT),
                     severity_of(r["psi_memory_some_avg"], PSI_MEM_WARN, None),
                     severity_of(r["psi_memory_full_avg"], PSI_MEM_FULL_CRIT, PSI_MEM_FULL_CRIT),
                     "critical" if (r["oom_kills"] or 0) > 0 else None)
        if not sev:
            continue
        parts = [f"available memory down to {fmt_bytes(r['available_min'])} ({r['available_min_pct']}% of "
                 f"{fmt_bytes(r['mem_total'])})"]
        if r["swap_pages_ps_avg"]:
            parts.append(f"swapping {r['swap_pages_ps_avg']} pages/s on average")
        if r["psi_memory_some_avg"] is not None:
            parts.append(f"PSI memory some {r['psi_memory_some_avg']}%, full {r['psi_memory_full_avg']}%")
        if r["oom_kills"]:
            parts.append(f"{r['oom_kills']} OOM kill(s)")
        out.append(Finding("bottleneck", "memory.pressure", sev, "memory pressure: " + ", ".join(parts),
                           r["host"], None, r, memory_sql(w, r["host"]), score=100 - (r["available_min_pct"] or 100)))
    return out
