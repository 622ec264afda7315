"""Sockets (``net.listen_queue``, ``net.ports``): listeners whose accept queue holds
connections snapshot after snapshot (:func:`listen_queue_sql`), and ephemeral port pressure
towards one destination, TIME_WAIT included (:func:`ports_sql`). The kernel counters of the TCP
stack (overflows, retransmissions) are :mod:`analyze.commands.report.host`'s.

The SQL is the text of those functions, written into each finding (``sql``): it runs unchanged
under ``procsnap query --rec DIR`` and gives the rows the finding was made of.
"""

from __future__ import annotations

from recorder.source.procfs import endpoint

from analyze.data.db import Recording
from analyze.commands.report.model import Finding, Window, lit, query_rows, severity_of

LISTEN_STREAK, LISTEN_QUEUE_WARN, LISTEN_STUCK_SHARE = 3, 64, 0.9
EPHEMERAL_LOW, EPHEMERAL_HIGH = 32768, 60999         # the kernel's default ip_local_port_range
EPHEMERAL_RANGE = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1
PORTS_WARN, PORTS_CRIT = 50.0, 80.0                  # % of the range towards one destination
TIME_WAIT_INFO = 5000


def listen_queue_sql(w: Window, host: str | None = None, listener: dict | None = None) -> str:
    narrow = ""
    if host:
        narrow += f" AND host = {lit(host)}"
    if listener:
        narrow += (f" AND local_addr = {lit(listener['local_addr'])} AND local_port = {listener['local_port']}"
                   f" AND netns IS NOT DISTINCT FROM {lit(listener['netns'])}")
    return f"""/* procsnap report: TCP listeners with connections waiting to be accepted (Recv-Q of a listener) */
WITH l AS (
    SELECT host, ts, netns, local_addr, local_port, max(rx_queue) AS queued,
           list(DISTINCT pid ORDER BY pid) FILTER (WHERE pid IS NOT NULL) AS pids
    FROM sockets
    WHERE state = 'LISTEN' AND proto = 'TCP' AND {w.sql()}{narrow}
    GROUP BY ALL
),
runs AS (
    SELECT *, row_number() OVER (PARTITION BY host, netns, local_addr, local_port ORDER BY ts)
            - row_number() OVER (PARTITION BY host, netns, local_addr, local_port, queued > 0 ORDER BY ts) AS run
    FROM l
),
streak AS (
    SELECT host, netns, local_addr, local_port, max(n) AS longest_run
    FROM (SELECT host, netns, local_addr, local_port, run, count(*) AS n FROM runs WHERE queued > 0 GROUP BY ALL)
    GROUP BY ALL
)
SELECT l.host, l.netns, l.local_addr, l.local_port, count(*) AS samples, count(*) FILTER (WHERE queued > 0) AS samples_queued,
       max(queued) AS queued_max, arg_max(ts, (queued, -epoch(ts))) AS queued_max_at, min(ts) FILTER (WHERE queued > 0) AS first_queued,
       coalesce(max(s.longest_run), 0) AS longest_run, arg_max(pids, ts) AS pids,
       (SELECT string_agg(DISTINCT o.name, ',' ORDER BY o.name)
          FROM (SELECT arg_max(p.name, p.ts) AS name FROM processes p
                WHERE p.host = l.host AND p.pid IN (SELECT unnest(arg_max(l.pids, l.ts))) AND {w.sql('p.ts')}
                GROUP BY p.pid) o) AS owners
FROM l LEFT JOIN streak s USING (host, netns, local_addr, local_port)
GROUP BY l.host, l.netns, l.local_addr, l.local_port
HAVING max(queued) > 0
ORDER BY longest_run DESC, queued_max DESC"""

def ports_sql(w: Window, host: str | None = None) -> str:
    h = f" AND host = {lit(host)}" if host else ""
    return f"""/* procsnap report: TIME_WAIT sockets and ephemeral ports in use towards one destination
   (against the kernel's default ip_local_port_range {EPHEMERAL_LOW}-{EPHEMERAL_HIGH}: the range itself is not recorded) */
WITH s AS (
    SELECT DISTINCT host, ts, netns, local_addr, local_port, remote_addr, remote_port, state
    FROM sockets
    WHERE proto = 'TCP' AND state <> 'LISTEN' AND {w.sql()}{h}
),
tw AS (
    SELECT host, ts, count(*) FILTER (WHERE state = 'TIME_WAIT') AS time_wait, count(*) AS tcp FROM s GROUP BY ALL
),
dest AS (
    SELECT host, ts, netns, local_addr, remote_addr, remote_port, count(*) AS ports
    FROM s WHERE local_port BETWEEN {EPHEMERAL_LOW} AND {EPHEMERAL_HIGH} GROUP BY ALL
),
top_dest AS (
    SELECT host, max(ports) AS ports_max, arg_max(remote_addr || ':' || remote_port, (ports, -epoch(ts), remote_addr, remote_port)) AS destination,
           arg_max(ts, (ports, -epoch(ts), remote_addr, remote_port)) AS ports_max_at
    FROM dest GROUP BY host
)
SELECT tw.host, max(time_wait) AS time_wait_max, arg_max(tw.ts, (time_wait, -epoch(tw.ts))) AS time_wait_max_at, max(tcp) AS tcp_max,
       any_value(d.destination) AS busiest_destination, coalesce(any_value(d.ports_max), 0) AS ports_max,
       any_value(d.ports_max_at) AS ports_max_at,
       round(coalesce(any_value(d.ports_max), 0) * 100.0 / {EPHEMERAL_RANGE}, 1) AS pct_of_range
FROM tw LEFT JOIN top_dest d USING (host)
GROUP BY tw.host ORDER BY tw.host"""


def findings(rec: Recording, w: Window, insts: dict) -> list[Finding]:
    """This kind's findings in the window W (INSTS: the process instances in it, by identity)."""
    out: list[Finding] = []
    for r in query_rows(rec, listen_queue_sql(w)):
        stuck = r["samples"] >= 5 and r["samples_queued"] >= LISTEN_STUCK_SHARE * r["samples"]
        if not (stuck or r["longest_run"] >= LISTEN_STREAK or r["queued_max"] >= LISTEN_QUEUE_WARN):
            continue
        sev = "critical" if stuck else "warning"
        why = "never drained: the owner is not accepting" if stuck else \
            f"waiting in {r['longest_run']} snapshots in a row"
        addr = endpoint(r["local_addr"] or "", r["local_port"])
        out.append(Finding("bottleneck", "net.listen_queue", sev,
                           f"listen queue of TCP {addr} ({r['owners'] or 'no owner'}): up to "
                           f"{r['queued_max']} connections waiting to be accepted, {why}",
                           r["host"], None, r, listen_queue_sql(w, r["host"], r), score=r["queued_max"]))

    for r in query_rows(rec, ports_sql(w)):
        sev = severity_of(r["pct_of_range"], PORTS_WARN, PORTS_CRIT)
        tw_pct = (r["time_wait_max"] or 0) * 100.0 / EPHEMERAL_RANGE
        if not sev and tw_pct >= PORTS_WARN:
            sev = "warning"
        if not sev and (r["time_wait_max"] or 0) >= TIME_WAIT_INFO:
            sev = "info"
        if not sev:
            continue
        out.append(Finding("bottleneck", "net.ports", sev,
                           f"ephemeral port pressure: {r['ports_max']} local ports towards {r['busiest_destination']} "
                           f"({r['pct_of_range']}% of the default range {EPHEMERAL_LOW}-{EPHEMERAL_HIGH}), "
                           f"up to {r['time_wait_max']} sockets in TIME_WAIT", r["host"], None, r,
                           ports_sql(w, r["host"]), score=max(r["pct_of_range"] or 0, tw_pct)))
    return out
