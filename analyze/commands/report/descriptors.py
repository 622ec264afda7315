"""Descriptor limits (``fd.limit``, ``fd.host``): processes near their soft RLIMIT_NOFILE
(:func:`fd_limit_sql`) and the host near fs.file-max (:func:`file_max_sql`). Descriptor leaks are
:mod:`analyze.commands.report.leaks`'.

The SQL is the text of those functions, written into each finding (``sql``): it runs unchanged
under ``procsnap query --rec DIR`` and gives the rows the finding was made of.
"""

from __future__ import annotations

from analyze.data.db import Recording
from analyze.commands.report.model import (Finding, Window, instance_of, instance_where, lit, procs_filter, query_rows,
                                           severity_of)

FD_LIMIT_WARN, FD_LIMIT_CRIT = 80.0, 95.0            # % of the soft limit, at its highest
FILE_MAX_WARN, FILE_MAX_CRIT = 80.0, 95.0


def fd_limit_sql(w: Window, instance: dict | None = None) -> str:
    narrow = f" AND {instance_where(instance, 'p')}" if instance else ""
    return f"""/* procsnap report: processes at their highest share of the soft fd limit in the window */
SELECT p.host, p.boot_id, p.pid, p.start_time, arg_max(p.name, p.ts) AS name, arg_max(p.cmdline, p.ts) AS cmdline,
       max(p.num_fds) AS fds_max, arg_max(p.ts, (p.num_fds, -epoch(p.ts))) AS fds_max_at,
       arg_max(p.fd_limit, (p.num_fds, -epoch(p.ts))) AS fd_limit,
       round(max(p.num_fds * 100.0 / p.fd_limit), 1) AS pct_of_limit_max
FROM processes p JOIN snapshots s USING (host, snapshot_id)
WHERE {w.sql('p.ts')} AND {procs_filter()} AND p.fd_limit > 0 AND p.num_fds IS NOT NULL{narrow}
GROUP BY p.host, p.boot_id, p.pid, p.start_time
HAVING max(p.num_fds * 100.0 / p.fd_limit) >= {FD_LIMIT_WARN}
ORDER BY pct_of_limit_max DESC, p.pid"""

def file_max_sql(w: Window, host: str | None = None) -> str:
    h = f" AND host = {lit(host)}" if host else ""
    return f"""/* procsnap report: host-wide file handles against fs.file-max */
SELECT host, max(file_handles) AS file_handles_max, arg_max(ts, (file_handles, -epoch(ts))) AS at,
       arg_max(file_max, (file_handles, -epoch(ts))) AS file_max,
       round(max(file_handles * 100.0 / file_max), 1) AS pct_max
FROM system WHERE {w.sql()} AND file_max > 0{h}
GROUP BY host ORDER BY host"""


def findings(rec: Recording, w: Window, insts: dict) -> list[Finding]:
    """This kind's findings in the window W (INSTS: the process instances in it, by identity)."""
    out: list[Finding] = []
    for r in query_rows(rec, fd_limit_sql(w)):
        sev = severity_of(r["pct_of_limit_max"], FD_LIMIT_WARN, FD_LIMIT_CRIT)
        inst = instance_of(r, insts)
        out.append(Finding("bottleneck", "fd.limit", sev,
                           f"{r['name']} (pid {r['pid']}) at {r['fds_max']} of its {r['fd_limit']} descriptors "
                           f"({r['pct_of_limit_max']}% of the soft limit)", r["host"], inst, r,
                           fd_limit_sql(w, inst), score=r["pct_of_limit_max"]))
    for r in query_rows(rec, file_max_sql(w)):
        sev = severity_of(r["pct_max"], FILE_MAX_WARN, FILE_MAX_CRIT)
        if sev:
            out.append(Finding("bottleneck", "fd.host", sev,
                               f"host file handles at {r['file_handles_max']} of fs.file-max {r['file_max']} "
                               f"({r['pct_max']}%)", r["host"], None, r, file_max_sql(w, r["host"]),
                               score=r["pct_max"]))
    return out
