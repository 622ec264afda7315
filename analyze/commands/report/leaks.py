"""LEAKS (``leak.fds``, ``leak.rss``, ``leak.threads``, ``leak.close_wait`` and the descriptor
kinds): a measure of a process that grows like a leak over the window (the rule is in
:mod:`analyze.commands.report`'s overview). The SQL: :func:`leak_sql` (one statement for every
process, or narrowed to one instance or one identity's instances), built on
:func:`trend_fit_sql` and :func:`trend_verdict_sql`, which the host rules reuse.

The SQL is the text of those functions, written into each finding (``sql``): it runs unchanged
under ``procsnap query --rec DIR`` and gives the rows the finding was made of.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from analyze.commands.diff import SOCKET_TYPES
from analyze.data.db import Recording
from analyze.data.sqltext import sql_str
from analyze.commands.report.fmt import fmt_growth, fmt_hours, fmt_rate, fmt_secs
from analyze.commands.report.model import Finding, Window, brief, finite, instance_where, lit, rounded

LEAK_MIN_SAMPLES = 8
LEAK_MIN_SPAN_S = 5.0
LEAK_MIN_R2 = 0.8
LEAK_MIN_RELATIVE = 0.10
LEAK_MAX_GIVE_BACK = 0.30
LEAK_MAX_STEP = 0.50
LEAK_CRITICAL_HOURS = 24.0

# Measures: name -> (family, what it counts, the absolute growth floor).
MEASURES = {
    "fds": ("fds", "descriptors", 10),
    "fds_socket": ("fds", "sockets", 10),
    "fds_pipe": ("fds", "pipes", 10),
    "fds_regular": ("fds", "regular files", 10),
    "fds_deleted": ("fds", "deleted-but-open files", 10),
    "fds_anon_inode": ("fds", "anon inodes", 10),
    "rss": ("rss", "RSS", 8 << 20),
    "threads": ("threads", "threads", 5),
    "close_wait": ("close_wait", "CLOSE_WAIT sockets", 5),
}
LEAK_MIN_GROWTH = {m: v[2] for m, v in MEASURES.items()}
FD_KINDS = {
    "fds_socket": "type IN (" + ", ".join(sql_str(t) for t in SOCKET_TYPES) + ")",
    "fds_pipe": "type = 'FIFO'",
    "fds_regular": "type = 'REG' AND NOT deleted",
    "fds_deleted": "deleted",
    "fds_anon_inode": "type = 'a_inode'",
}
FAMILY_TITLES = {"fds": "descriptor leak", "rss": "memory leak", "threads": "thread leak",
                 "close_wait": "CLOSE_WAIT leak"}


def _leak_floor_sql() -> str:
    return "CASE measure " + " ".join(f"WHEN '{m}' THEN {v}" for m, v in LEAK_MIN_GROWTH.items()) + " END"

def trend_fit_sql(key: str) -> str:
    """The body of the leak rule's `fit` CTE: per KEY and measure, over a CTE `steps` of (KEY,
    measure, ts, x, value, step), the least-squares line and the step statistics. Shared by every
    rule that projects a growing series to a limit (leaks here, filling file systems)."""
    return f"""
    SELECT {key}, measure,
           regr_count(value, x) AS n,
           max(x) - min(x) AS span_s,
           regr_slope(value, x) * 3600 AS per_hour,
           regr_r2(value, x) AS r2,
           min(ts) AS first_ts, max(ts) AS last_ts,
           count(step) AS steps,
           count(step) FILTER (WHERE step < 0) AS decreases,
           coalesce(sum(step) FILTER (WHERE step > 0), 0) AS increase,
           coalesce(-sum(step) FILTER (WHERE step < 0), 0) AS decrease,
           coalesce(max(step), 0) AS max_step
    FROM steps GROUP BY ALL
"""

def trend_verdict_sql(growth: str, floor: str, base: str) -> str:
    """The leak rule's verdict over a row of trend_fit_sql: GROWTH (net growth) at least FLOOR and
    LEAK_MIN_RELATIVE of BASE, the fit and the steps as the module's docstring says."""
    return f"""(n >= {LEAK_MIN_SAMPLES} AND span_s >= {LEAK_MIN_SPAN_S} AND per_hour > 0 AND r2 >= {LEAK_MIN_R2}
        AND {growth} >= {floor}
        AND {growth} >= {LEAK_MIN_RELATIVE} * greatest({base}, 1)
        AND decreases * 2 <= steps AND decrease <= {LEAK_MAX_GIVE_BACK} * increase
        AND max_step <= {LEAK_MAX_STEP} * {growth})"""

def leak_sql(w: Window, instance: dict | None = None, members: list[dict] | None = None) -> str:
    """Per process instance (or, with members, per identity pooled by age) and
    measure: the fitted line, the step statistics, the verdict of the leak rule
    and the hours left. ``instance`` narrows to one instance; ``members`` lists
    the instances of identities as dicts with an ``identity`` number."""
    pooled = members is not None
    if pooled:
        values = ",\n        ".join(
            f"({m['identity']}, {lit(m['host'])}, {lit(m['boot_id'])}, {m['pid']}, {lit(m['start_time'])})"
            for m in members)
        head = (f"WITH members(identity, host, boot_id, pid, start_time) AS (VALUES\n        {values}\n),\n"
                "p AS (\n    SELECT m.identity, ")
        join = ("    JOIN members m ON m.host = p.host AND m.pid = p.pid AND m.start_time = p.start_time\n"
                "                  AND m.boot_id IS NOT DISTINCT FROM p.boot_id\n")
        narrow_p = narrow_f = ""
        key = "host, identity"
        x = "epoch(ts) - epoch(start_time)"
        label = "per identity across restarts (instances pooled, x = age of the process)"
        keep_id = "p.identity, "
    else:
        head = "WITH p AS (\n    SELECT "
        join = ""
        narrow_p = f"\n      AND {instance_where(instance, 'p')}" if instance else ""
        narrow_f = f" AND {instance_where(instance)}" if instance else ""
        key = "host, boot_id, pid, start_time"
        x = "epoch(ts)"
        label = "per process instance"
        keep_id = ""
    kinds = ",\n           ".join(f"count(*) FILTER (WHERE {cond}) AS {m}" for m, cond in FD_KINDS.items())
    kind_cols = ",\n           ".join(
        f"CASE WHEN p.has_files AND p.num_fds IS NOT NULL THEN coalesce(f.{m}, 0) END::DOUBLE AS {m}"
        for m in FD_KINDS)
    measures = ", ".join(MEASURES)
    pairs = ",\n                   ".join(f"{{'value': {m}, 'step': {m} - lag({m} IGNORE NULLS) OVER w}} AS {m}"
                                          for m in MEASURES)
    where_p = w.sql("p.ts")
    if pooled:
        # the members CTE narrows every table through p
        narrow_f = " AND (host, pid, start_time) IN (SELECT (host, pid, start_time) FROM members)"
    return f"""/* procsnap report: leak check {label}, window {w.start:%Y-%m-%d %H:%M:%S} .. {w.end:%H:%M:%S} UTC.
   A measure leaks when: n >= {LEAK_MIN_SAMPLES} samples over >= {LEAK_MIN_SPAN_S:g} s, slope > 0, r2 >= {LEAK_MIN_R2},
   growth >= floor and >= {LEAK_MIN_RELATIVE:g} x first value, most steps not decreases, decreases <= {LEAK_MAX_GIVE_BACK:g} x increases,
   largest step <= {LEAK_MAX_STEP:g} x growth. hours_left: to the soft fd limit (descriptors) or to MemAvailable (rss). */
{head}p.host, p.snapshot_id, p.ts, p.boot_id, p.pid, p.start_time, p.num_fds, p.fd_limit, p.rss, p.num_threads,
           s.open_files_seen IS NOT NULL AS has_files, s.sockets_seen IS NOT NULL AS has_sockets
    FROM processes p JOIN snapshots s USING (host, snapshot_id)
{join}    WHERE {where_p} AND p.pid <> s.recorder_pid AND p.pid <> 2 AND p.ppid <> 2{narrow_p}
),
f AS (
    SELECT host, snapshot_id, pid, start_time,
           {kinds}
    FROM open_files
    WHERE fd_num IS NOT NULL AND {w.sql()}{narrow_f}
    GROUP BY ALL
),
cw AS (
    SELECT host, snapshot_id, pid, start_time, count(*) AS close_wait
    FROM sockets
    WHERE state = 'CLOSE_WAIT' AND pid IS NOT NULL AND {w.sql()}{narrow_f}
    GROUP BY ALL
),
samples AS (
    SELECT {keep_id}p.host, p.ts, p.boot_id, p.pid, p.start_time, p.fd_limit, p.num_fds AS fds_now,
           p.num_fds::DOUBLE AS fds,
           {kind_cols},
           p.rss::DOUBLE AS rss, p.num_threads::DOUBLE AS threads,
           CASE WHEN p.has_sockets THEN coalesce(cw.close_wait, 0) END::DOUBLE AS close_wait
    FROM p LEFT JOIN f USING (host, snapshot_id, pid, start_time)
           LEFT JOIN cw USING (host, snapshot_id, pid, start_time)
),
-- per instance and measure: each sample's value and its step from the instance's previous sample of that measure
steps AS (
    SELECT * EXCLUDE (sample), sample.value, {x} AS x, sample.step
    FROM (
        UNPIVOT (
            SELECT {keep_id.replace('p.', '')}host, ts, boot_id, pid, start_time, fd_limit, fds_now,
                   {pairs}
            FROM samples
            WINDOW w AS (PARTITION BY host, boot_id, pid, start_time ORDER BY ts)
        ) ON {measures} INTO NAME measure VALUE sample
    )
    WHERE sample.value IS NOT NULL
),
inst AS (
    SELECT {keep_id.replace('p.', '')}host, boot_id, pid, start_time, measure, arg_min(value, ts) AS first_value, arg_max(value, ts) AS last_value, max(ts) AS last_ts,
           arg_max(fds_now, ts) AS fds_now, arg_max(fd_limit, ts) AS fd_limit
    FROM steps GROUP BY ALL
),
grown AS (
    SELECT {key}, measure, count(*) AS instances, sum(last_value - first_value) AS growth,
           list({{'pid': pid, 'first': first_value, 'last': last_value}} ORDER BY last_ts) AS per_instance,
           arg_min(first_value, (last_ts, pid)) AS first_value, arg_max(last_value, (last_ts, pid)) AS last_value,
           arg_max(fds_now, (last_ts, pid)) AS fds_now, arg_max(fd_limit, (last_ts, pid)) AS fd_limit
    FROM inst GROUP BY ALL
),
fit AS ({trend_fit_sql(key)}),
mem AS (
    SELECT host, arg_max(mem_available, ts) AS mem_available FROM system WHERE {w.sql()} GROUP BY host
)
SELECT fit.*, g.instances, g.per_instance, g.first_value, g.last_value, g.growth, g.fds_now, g.fd_limit, mem.mem_available,
       {trend_verdict_sql("g.growth", _leak_floor_sql(), "g.first_value")} AS leak,
       CASE WHEN per_hour > 0 AND measure = 'rss' THEN mem.mem_available / per_hour
            WHEN per_hour > 0 AND measure NOT IN ('rss', 'threads') THEN greatest(g.fd_limit - g.fds_now, 0) / per_hour
       END AS hours_left
FROM fit JOIN grown g USING ({key}, measure) LEFT JOIN mem USING (host)
ORDER BY leak DESC, hours_left NULLS LAST, {key}, measure"""

def instances_sql(w: Window) -> str:
    return f"""SELECT p.host, p.boot_id, p.pid, p.start_time, arg_max(p.ppid, p.ts) AS ppid, arg_max(p.name, p.ts) AS name,
       arg_max(p.exe, p.ts) AS exe, arg_max(p.cmdline, p.ts) AS cmdline, arg_max(p.cgroup, p.ts) AS cgroup,
       arg_max(p."user", p.ts) AS "user", min(p.ts) AS first_seen, max(p.ts) AS last_seen, count(*) AS samples
FROM processes p JOIN snapshots s USING (host, snapshot_id)
WHERE {w.sql('p.ts')} AND p.pid <> s.recorder_pid
GROUP BY p.host, p.boot_id, p.pid, p.start_time
ORDER BY p.host, p.boot_id, p.pid, p.start_time"""

def _fit_evidence(r: dict) -> dict:
    return {
        "samples": r["n"], "span_s": rounded(r["span_s"], 1), "from": r["first_ts"], "to": r["last_ts"],
        "first": r["first_value"], "last": r["last_value"], "growth": r["growth"],
        "per_hour": rounded(r["per_hour"], 1), "r2": rounded(r["r2"], 3),
        "steps": r["steps"], "decreases": r["decreases"], "largest_step": r["max_step"],
        "leak": bool(r["leak"]),
    }

def leak_findings(rec: Recording, w: Window, inst_rows: list[dict], fits: list[dict],
                   pooled: list[dict], members: dict[int, list[dict]], ident_of: dict) -> list[Finding]:
    by_inst = {(r["host"], r["boot_id"], r["pid"], r["start_time"]): r for r in inst_rows}
    out: list[Finding] = []
    covered = set()  # (instance key, family) reported at identity level
    groups = defaultdict(dict)
    for r in pooled:
        groups[(r["host"], r["identity"])][r["measure"]] = r
    for (host, ident_no), ms in groups.items():
        for family in ("fds", "rss", "threads", "close_wait"):
            f = _family_finding(w, family, ms, level="identity")
            if f is None:
                continue
            insts = members[ident_no]
            latest = max(insts, key=lambda m: (m["last_seen"], m["pid"]))
            f.process = brief(latest) | {
                "identity": dict(zip(("exe", "cmdline", "cgroup", "user"), ident_of[ident_no])),
                "instances": [brief(m) for m in sorted(insts, key=lambda m: (m["start_time"], m["pid"]))],
            }
            f.host = host
            f.sql = leak_sql(w, members=insts)
            f.title = (f"{FAMILY_TITLES[family]} across {len(insts)} instances of {latest['name']} "
                       f"(pids {', '.join(str(m['pid']) for m in f.process['instances'])}): {f.title}")
            out.append(f)
            for m in insts:
                covered.add(((m["host"], m["boot_id"], m["pid"], m["start_time"]), family))
    per_inst = defaultdict(dict)
    for r in fits:
        per_inst[(r["host"], r["boot_id"], r["pid"], r["start_time"])][r["measure"]] = r
    for key, ms in per_inst.items():
        for family in ("fds", "rss", "threads", "close_wait"):
            if (key, family) in covered:
                continue
            f = _family_finding(w, family, ms, level="instance")
            if f is None:
                continue
            inst = by_inst.get(key) or dict(zip(("host", "boot_id", "pid", "start_time"), key))
            f.process = brief(inst)
            f.host = key[0]
            f.sql = leak_sql(w, instance=inst)
            f.title = f"{FAMILY_TITLES[family]} in {inst.get('name')} (pid {key[2]}): {f.title}"
            out.append(f)
    return out

def _family_finding(w: Window, family: str, ms: dict, level: str) -> Finding | None:
    names = [m for m, v in MEASURES.items() if v[0] == family]
    leaking = [m for m in names if m in ms and ms[m]["leak"]]
    if not leaking:
        return None
    # the total when it leaks itself, else the kind that grew most
    head = "fds" if "fds" in leaking else max(leaking, key=lambda m: ms[m]["growth"] or 0)
    r = ms[head]
    what = MEASURES[head][1]
    ev = {"level": level, "measure": head, **_fit_evidence(r)}
    if level == "identity":
        ev["instances"] = r["instances"]
        ev["per_instance"] = r["per_instance"]
    if family == "fds":
        ev["by_kind"] = {m.removeprefix("fds_"): _fit_evidence(ms[m]) for m in FD_KINDS if m in leaking}
    hours = finite(r["hours_left"])
    if family in ("fds", "close_wait"):
        ev["limit"] = {"what": "soft fd limit (processes.fd_limit)", "value": r["fd_limit"], "current": r["fds_now"]}
    elif family == "rss":
        ev["limit"] = {"what": "current RSS + MemAvailable (system.mem_available) at the end of the window",
                       "value": (r["last_value"] or 0) + (r["mem_available"] or 0) if r["mem_available"] is not None
                       else None, "current": r["last_value"]}
    else:
        ev["limit"] = {"what": "none recorded for threads", "value": None, "current": r["last_value"]}
    ev["hours_left"] = rounded(hours, 3)
    ev["exhausted_at"] = (r["last_ts"] + dt.timedelta(hours=hours)) if hours is not None and hours < 1e6 else None
    sev = "critical" if hours is not None and hours <= LEAK_CRITICAL_HOURS else "warning"
    if level == "instance":
        title = (f"{fmt_growth(head, r['growth'])} {what} in {fmt_secs(r['last_ts'] - r['first_ts'])} "
                 f"({fmt_rate(head, r['per_hour'])}/h, R² {r['r2']:.2f})")
    else:
        title = (f"each instance grows: {fmt_growth(head, r['growth'])} {what} in all, "
                 f"{fmt_rate(head, r['per_hour'])}/h of age (R² {r['r2']:.2f})")
    if family == "fds" and ev["by_kind"]:
        title += ": " + ", ".join(f"{k} {fmt_growth('fds', v['growth'])}" for k, v in ev["by_kind"].items())
    if hours is not None:
        lim = {"fds": "soft fd limit", "close_wait": "soft fd limit", "rss": "available memory"}[family]
        title += f"; {lim} exhausted in ~{fmt_hours(hours)}"
    rel = (r["per_hour"] or 0) / max(abs(r["first_value"] or 0), 1)
    return Finding("leak", f"leak.{family}", sev, title, "", None, ev, "", score=rel, hours_left=hours)
