"""Where threads wait (``threads.wait``), from the thread samples the recorder takes during an
incident: per host, what the sampled threads (R, D, and S when recorded) were doing most, as
(state, system call or activity, wchan, kernel stack), host-wide (:func:`waits_sql`) and per
process (:func:`waits_proc_sql`). A warning when threads were found in D (uninterruptible) in at
least ``D_WARN_SHARE`` of the samples: something in the kernel (a disk, NFS, a lock) held them.

The SQL is the text of those functions, written into each finding: it runs unchanged under
``procsnap query --rec DIR``.
"""

from __future__ import annotations

from analyze.data.db import Recording
from analyze.commands.report.model import Finding, Window, lit, query_rows

D_WARN_SHARE = 0.10
TOP = 5


def _what() -> str:
    """SQL: what a sampled thread was doing, as one word or two: its system call's name (or
    number), else its activity ('running', 'kernel thread', ...)."""
    return "coalesce(syscall, CASE WHEN syscall_nr >= 0 THEN 'syscall ' || syscall_nr END, activity, '?')"


def waits_at_sql() -> str:
    """Per process of one host's snapshot ($h, $s), the samples of its threads the recorder took
    since the snapshot before (written with this one): per (state, doing), in how many of the
    samples taken ($n) some thread of it was so, and how many thread samples that was. top's WAIT
    column (analyze.commands.top.loading) takes the most frequent."""
    return f"""SELECT pid, state, {_what()} AS doing, count(DISTINCT time) AS samples, count(*) AS thread_samples
FROM thread_samples WHERE host = $h AND snapshot_id = $s
GROUP BY ALL ORDER BY pid, samples DESC, thread_samples DESC, state, doing"""


def waits_sql(w: Window, host: str | None = None) -> str:
    h = f" AND host = {lit(host)}" if host else ""
    return f"""/* procsnap report: where threads wait, host-wide: samples by state, system call, wchan and stack */
WITH s AS (SELECT * FROM thread_samples WHERE {w.sql('time')}{h}),
n AS (SELECT host, count(DISTINCT time) AS samples_taken FROM s GROUP BY host)
SELECT s.host, s.state, {_what()} AS doing, s.wchan, s.stack, count(*) AS samples,
       round(count(*) / any_value(n.samples_taken), 2) AS threads_avg, count(DISTINCT (s.pid, s.tid)) AS threads,
       count(DISTINCT s.pid) AS processes, mode(s.name) AS mostly, any_value(n.samples_taken) AS samples_taken
FROM s JOIN n USING (host)
GROUP BY ALL ORDER BY s.host, samples DESC, doing LIMIT {TOP * 20}"""


def waits_proc_sql(w: Window, host: str) -> str:
    return f"""/* procsnap report: where threads wait, per process: its most sampled state, system call and wchan */
WITH s AS (SELECT * FROM thread_samples WHERE {w.sql('time')} AND host = {lit(host)})
SELECT host, boot_id, pid, mode(name) AS name, state, {_what()} AS doing, wchan, count(*) AS samples,
       count(DISTINCT tid) AS threads
FROM s GROUP BY ALL ORDER BY samples DESC, pid LIMIT {TOP}"""


def findings(rec: Recording, w: Window, insts: dict) -> list[Finding]:
    if not rec.files.get("thread_samples"):
        return []
    by_host: dict[str, list[dict]] = {}
    for r in query_rows(rec, waits_sql(w)):
        by_host.setdefault(r["host"], []).append(r)
    out = []
    for host, rows in by_host.items():
        total = sum(r["samples"] for r in rows)
        d = sum(r["samples"] for r in rows if r["state"] == "D")
        top = rows[0]
        procs = query_rows(rec, waits_proc_sql(w, host))
        where = f"{top['state']} in {top['doing']}" + (f" ({top['wchan']})" if top["wchan"] else "")
        title = (f"where threads wait: {where} in {top['samples'] * 100 // max(total, 1)}% of thread samples "
                 f"({top['threads_avg']:g} threads on average, mostly {top['mostly']})")
        if procs:
            p = procs[0]
            title += f"; most sampled: {p['name']} (pid {p['pid']}) {p['state']} in {p['doing']}"
        sev = "warning" if d and d >= D_WARN_SHARE * total else "info"
        ev = {"samples_taken": top["samples_taken"], "thread_samples": total, "d_state_samples": d,
              "top": [{k: r[k] for k in ("state", "doing", "wchan", "stack", "samples", "threads", "processes")}
                      for r in rows[:TOP]],
              "top_processes": [{k: p[k] for k in ("pid", "name", "state", "doing", "wchan", "samples")} for p in procs]}
        out.append(Finding("bottleneck", "threads.wait", sev, title, host, None, ev, waits_sql(w, host),
                           score=total))
    return out
