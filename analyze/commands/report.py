"""Leaks and bottlenecks: a recording turned into a ranked list of findings,
each with its evidence and the SQL that reproduces it.

A finding is data (:class:`Finding`): a category (``leak`` or
``bottleneck``), a kind (``leak.fds``, ``cpu.process``, …), a severity
(critical, warning, info), a one-line title, the host and process it is about,
an evidence dict (timestamps and values) and one SQL statement. The SQL is
parameter-free (the window, the host and the process are written into it) and
runs unchanged under ``procsnap query --rec DIR``; the engine computes each
finding with the very same SQL, narrowed to all processes, so what the
statement prints is what the report says. Everything numeric is computed in
DuckDB.

LEAK RULE. A measure of a process is a time series over the window: its
descriptors (``processes.num_fds``) and, counted from ``open_files``, its
sockets, pipes, regular files, deleted-but-open files and anon inodes
(epoll, eventfd, …); its RSS; its threads; and its TCP sockets in CLOSE_WAIT
(from ``sockets``). The series grows like a leak when all of these hold:

* at least ``LEAK_MIN_SAMPLES`` (8) samples over at least ``LEAK_MIN_SPAN_S``
  (5 s);
* the least-squares line through (epoch(ts), value) rises (``regr_slope`` > 0)
  and fits (``regr_r2`` ≥ ``LEAK_MIN_R2``, 0.8);
* the net growth (last − first) is at least an absolute floor per measure
  (``LEAK_MIN_GROWTH``: 10 descriptors, 8 MiB, 5 threads, 5 CLOSE_WAIT) and
  at least ``LEAK_MIN_RELATIVE`` (10 %) of the first value;
* the growth is spread over the window: at least half of the steps between
  consecutive samples are not decreases, the decreases add up to at most
  ``LEAK_MAX_GIVE_BACK`` (30 %) of the increases, and the largest single step
  is at most ``LEAK_MAX_STEP`` (50 %) of the net growth.

So a steady process (no slope), a sawtooth that allocates and frees (a poor
fit, as much given back as taken) and a one-off step at start-up (one step
is all of the growth) are not leaks.

The same rule runs per process instance (boot id, pid, start time) and per
identity across restarts: the instances of one identity (executable, command
line and cgroup with digits normalised, user: :func:`analyze.commands.diff.identity`)
are pooled with the process's age (ts − start_time) as the x axis, so a
service that leaks and is restarted every few minutes lines up as one rising
line. An identity finding replaces its instances' findings of the same
measure.

Projection: time until exhaustion, from the end of the window at the fitted
rate. Descriptors (and CLOSE_WAIT sockets, which are descriptors) against the
soft fd limit (``processes.fd_limit``): (limit − current fds) / slope. RSS
against the host's memory: current RSS + ``system.mem_available`` at the end
of the window, that is mem_available / slope (cgroup memory limits are not
recorded). Threads have no recorded limit and no projection. A leak projected
to exhaust its limit within ``LEAK_CRITICAL_HOURS`` (24 h) is critical, any
other leak a warning.

BOTTLENECKS (thresholds are the constants below; the recorder itself and
kernel threads are left out of the per-process ones, except D state):

* ``cpu.saturation``: host CPU busy % and run queue against cores (the run
  queue is ``procs_running`` − 1: the recorder is running when it reads it),
  PSI cpu where present. ``cpu.steal`` and ``cpu.iowait``: average share of
  all CPUs. ``cpu.process``: the processes that used the CPU in the window,
  by CPU seconds. Severity follows the share of the host (CPU seconds over
  the window's seconds times the host's cores: ``PROC_HOST_WARN``, 25 %, is a
  warning, ``PROC_HOST_CRIT``, 75 %, critical) and of the process's own life: one
  that kept a whole core busy for all the time it was seen (since its start
  when it started in the window), however short, is at least a warning and
  is listed even when its share of the window is small.
* ``proc.d_state``: a process with a thread in uninterruptible sleep (D) in
  consecutive snapshots.
* ``io.disk`` (per device %util), ``io.pressure`` (PSI io) and ``io.process``
  (storage bytes read and written per process).
* ``memory.pressure``: lowest available memory, swap-in/out pages per
  second, PSI memory, OOM kills.
* ``fd.limit``: a process near its soft fd limit; ``fd.host``: host file
  handles near fs.file-max.
* ``net.listen_queue``: a TCP listener with connections waiting to be
  accepted in consecutive snapshots (the backlog itself is not recorded).
* ``net.ports``: TIME_WAIT sockets and ephemeral ports in use towards one
  destination, against the kernel's default ephemeral range (32768–60999;
  ``ip_local_port_range`` is not recorded).
* ``ctxsw.host`` and ``ctxsw.process``: context-switch storms.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections import defaultdict
from dataclasses import asdict, dataclass

from recorder.source.procfs import endpoint
from recorder.schema import TABLES

from analyze.data.db import Recording
from analyze.data.sqltext import sql_str
from analyze.commands.diff import SOCKET_TYPES, identity
from analyze.errors import ProcsnapError, UsageError
from analyze.data.timespec import check_window

SEVERITIES = ("critical", "warning", "info")
_SEV_RANK = {s: i for i, s in enumerate(SEVERITIES)}

# --- the leak rule -------------------------------------------------------
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

# --- bottleneck thresholds ----------------------------------------------
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
DISK_UTIL_WARN, DISK_UTIL_CRIT = 80.0, 95.0          # %util, average
PSI_IO_WARN, PSI_IO_FULL_CRIT = 20.0, 10.0
PROC_IO_LIST = 1 << 20                               # bytes/s to storage, average
PROC_IO_TOP = 5
MEM_AVAIL_WARN, MEM_AVAIL_CRIT = 10.0, 5.0           # lowest MemAvailable, % of MemTotal
SWAP_PAGES_WARN, SWAP_PAGES_CRIT = 100.0, 1000.0     # pages swapped in + out per second, average
PSI_MEM_WARN, PSI_MEM_FULL_CRIT = 10.0, 10.0
FD_LIMIT_WARN, FD_LIMIT_CRIT = 80.0, 95.0            # % of the soft limit, at its highest
FILE_MAX_WARN, FILE_MAX_CRIT = 80.0, 95.0
LISTEN_STREAK, LISTEN_QUEUE_WARN, LISTEN_STUCK_SHARE = 3, 64, 0.9
EPHEMERAL_LOW, EPHEMERAL_HIGH = 32768, 60999         # the kernel's default ip_local_port_range
EPHEMERAL_RANGE = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1
PORTS_WARN, PORTS_CRIT = 50.0, 80.0                  # % of the range towards one destination
TIME_WAIT_INFO = 5000
CTXSW_HOST_WARN, CTXSW_HOST_CRIT = 50_000.0, 150_000.0   # per CPU per second, average
CTXSW_PROC_WARN = 20_000.0                               # per second, average over the window
CTXSW_PROC_TOP = 3

# Order of bottleneck kinds within one severity.
KIND_ORDER = ["memory.pressure", "fs.space", "fs.inodes", "fd.limit", "fd.host", "cpu.saturation", "proc.d_state",
              "net.listen_queue", "net.listen_overflow", "net.ports", "net.retransmits", "io.disk", "io.pressure",
              "cpu.steal", "cpu.iowait", "ctxsw.host", "cpu.process", "io.process", "ctxsw.process"]


@dataclass
class Window:
    start: dt.datetime
    end: dt.datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def sql(self, col: str = "ts") -> str:
        return f"{col} BETWEEN {ts_sql(self.start)} AND {ts_sql(self.end)}"


@dataclass
class Finding:
    category: str           # leak | bottleneck
    kind: str
    severity: str           # critical | warning | info
    title: str
    host: str
    process: dict | None
    evidence: dict
    sql: str
    score: float = 0.0      # ranks findings of one kind and severity: larger first
    hours_left: float | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("score")
        d.pop("hours_left")
        return d


def ts_sql(t: dt.datetime) -> str:
    return f"TIMESTAMPTZ '{t.astimezone(dt.timezone.utc).isoformat(sep=' ')}'"


def _lit(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, dt.datetime):
        return ts_sql(v)
    if isinstance(v, (int, float)):
        return repr(v)
    return sql_str(str(v))


def _instance_where(inst: dict, alias: str = "") -> str:
    a = f"{alias}." if alias else ""
    return (f"{a}host = {_lit(inst['host'])} AND {a}pid = {inst['pid']} AND {a}start_time = {_lit(inst['start_time'])}"
            f" AND {a}boot_id IS NOT DISTINCT FROM {_lit(inst['boot_id'])}")


def _finite(v):
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def _rows(rec: Recording, sql: str) -> list[dict]:
    cols, rows = rec.execute(sql)
    return [dict(zip(cols, r)) for r in rows]


# --------------------------------------------------------------------------
# Leaks: the SQL


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
            f"({m['identity']}, {_lit(m['host'])}, {_lit(m['boot_id'])}, {m['pid']}, {_lit(m['start_time'])})"
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
        narrow_p = f"\n      AND {_instance_where(instance, 'p')}" if instance else ""
        narrow_f = f" AND {_instance_where(instance)}" if instance else ""
        key = "host, boot_id, pid, start_time"
        x = "epoch(ts)"
        label = "per process instance"
        keep_id = ""
    kinds = ",\n           ".join(f"count(*) FILTER (WHERE {cond}) AS {m}" for m, cond in FD_KINDS.items())
    kind_cols = ",\n               ".join(
        f"CASE WHEN p.has_files AND p.num_fds IS NOT NULL THEN coalesce(f.{m}, 0) END::DOUBLE AS {m}"
        for m in FD_KINDS)
    measures = ", ".join(MEASURES)
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
    UNPIVOT (
        SELECT {keep_id}p.host, p.ts, p.boot_id, p.pid, p.start_time, p.fd_limit, p.num_fds AS fds_now,
               p.num_fds::DOUBLE AS fds,
               {kind_cols},
               p.rss::DOUBLE AS rss, p.num_threads::DOUBLE AS threads,
               CASE WHEN p.has_sockets THEN coalesce(cw.close_wait, 0) END::DOUBLE AS close_wait
        FROM p LEFT JOIN f USING (host, snapshot_id, pid, start_time)
               LEFT JOIN cw USING (host, snapshot_id, pid, start_time)
    ) ON {measures} INTO NAME measure VALUE value
),
steps AS (
    SELECT *, {x} AS x,
           value - lag(value) OVER (PARTITION BY host, boot_id, pid, start_time, measure ORDER BY ts) AS step
    FROM samples
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


def _instances_sql(w: Window) -> str:
    return f"""SELECT p.host, p.boot_id, p.pid, p.start_time, arg_max(p.ppid, p.ts) AS ppid, arg_max(p.name, p.ts) AS name,
       arg_max(p.exe, p.ts) AS exe, arg_max(p.cmdline, p.ts) AS cmdline, arg_max(p.cgroup, p.ts) AS cgroup,
       arg_max(p."user", p.ts) AS "user", min(p.ts) AS first_seen, max(p.ts) AS last_seen, count(*) AS samples
FROM processes p JOIN snapshots s USING (host, snapshot_id)
WHERE {w.sql('p.ts')} AND p.pid <> s.recorder_pid
GROUP BY p.host, p.boot_id, p.pid, p.start_time"""


# --------------------------------------------------------------------------
# Leaks: findings


def _brief(inst: dict) -> dict:
    return {k: inst.get(k) for k in ("host", "pid", "ppid", "name", "user", "start_time", "boot_id", "exe", "cmdline",
                                     "first_seen", "last_seen")}


def _fit_evidence(r: dict) -> dict:
    return {
        "samples": r["n"], "span_s": _round(r["span_s"], 1), "from": r["first_ts"], "to": r["last_ts"],
        "first": r["first_value"], "last": r["last_value"], "growth": r["growth"],
        "per_hour": _round(r["per_hour"], 1), "r2": _round(r["r2"], 3),
        "steps": r["steps"], "decreases": r["decreases"], "largest_step": r["max_step"],
        "leak": bool(r["leak"]),
    }


def _round(v, nd):
    v = _finite(v)
    return None if v is None else round(v, nd)


def _leak_findings(rec: Recording, w: Window, inst_rows: list[dict], fits: list[dict],
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
            f.process = _brief(latest) | {
                "identity": dict(zip(("exe", "cmdline", "cgroup", "user"), ident_of[ident_no])),
                "instances": [_brief(m) for m in sorted(insts, key=lambda m: (m["start_time"], m["pid"]))],
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
            f.process = _brief(inst)
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
    hours = _finite(r["hours_left"])
    if family in ("fds", "close_wait"):
        ev["limit"] = {"what": "soft fd limit (processes.fd_limit)", "value": r["fd_limit"], "current": r["fds_now"]}
    elif family == "rss":
        ev["limit"] = {"what": "current RSS + MemAvailable (system.mem_available) at the end of the window",
                       "value": (r["last_value"] or 0) + (r["mem_available"] or 0) if r["mem_available"] is not None
                       else None, "current": r["last_value"]}
    else:
        ev["limit"] = {"what": "none recorded for threads", "value": None, "current": r["last_value"]}
    ev["hours_left"] = _round(hours, 3)
    ev["exhausted_at"] = (r["last_ts"] + dt.timedelta(hours=hours)) if hours is not None and hours < 1e6 else None
    sev = "critical" if hours is not None and hours <= LEAK_CRITICAL_HOURS else "warning"
    if level == "instance":
        title = (f"{_fmt_growth(head, r['growth'])} {what} in {_fmt_secs(r['last_ts'] - r['first_ts'])} "
                 f"({_fmt_rate(head, r['per_hour'])}/h, R² {r['r2']:.2f})")
    else:
        title = (f"each instance grows: {_fmt_growth(head, r['growth'])} {what} in all, "
                 f"{_fmt_rate(head, r['per_hour'])}/h of age (R² {r['r2']:.2f})")
    if family == "fds" and ev["by_kind"]:
        title += ": " + ", ".join(f"{k} {_fmt_growth('fds', v['growth'])}" for k, v in ev["by_kind"].items())
    if hours is not None:
        lim = {"fds": "soft fd limit", "close_wait": "soft fd limit", "rss": "available memory"}[family]
        title += f"; {lim} exhausted in ~{_fmt_hours(hours)}"
    rel = (r["per_hour"] or 0) / max(abs(r["first_value"] or 0), 1)
    return Finding("leak", f"leak.{family}", sev, title, "", None, ev, "", score=rel, hours_left=hours)


# --------------------------------------------------------------------------
# Bottlenecks: one SQL builder and one check per kind


def _procs_filter(alias: str = "p") -> str:
    return f"{alias}.pid <> s.recorder_pid AND {alias}.pid <> 2 AND {alias}.ppid <> 2"


def host_cpu_sql(w: Window, host: str | None = None) -> str:
    h = f" AND host = {_lit(host)}" if host else ""
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
    narrow = f" AND {_instance_where(instance, 'p')}" if instance else ""
    return f"""/* procsnap report: CPU used per process instance in the window (a process started inside it counts all its CPU) */
WITH w AS (
    SELECT p.* FROM processes p JOIN snapshots s USING (host, snapshot_id)
    WHERE {w.sql('p.ts')} AND {_procs_filter()}{narrow}
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
    narrow = f" AND {_instance_where(instance, 'p')}" if instance else ""
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


def disk_sql(w: Window, host: str | None = None, device: str | None = None) -> str:
    narrow = (f" AND host = {_lit(host)}" if host else "") + (f" AND device = {_lit(device)}" if device else "")
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
    h = f" AND host = {_lit(host)}" if host else ""
    return f"""/* procsnap report: I/O pressure stall information (PSI) over the window */
SELECT host, count(psi_io_some_pct) AS samples, round(avg(psi_io_some_pct), 1) AS psi_io_some_avg,
       round(max(psi_io_some_pct), 1) AS psi_io_some_max, round(avg(psi_io_full_pct), 1) AS psi_io_full_avg,
       arg_max(ts, (psi_io_some_pct, -epoch(ts))) AS worst_at
FROM system_rates WHERE {w.sql()}{h}
GROUP BY host HAVING count(psi_io_some_pct) > 0"""


def proc_io_sql(w: Window, instance: dict | None = None) -> str:
    narrow = f" AND {_instance_where(instance, 'p')}" if instance else ""
    return f"""/* procsnap report: bytes each process instance read from and wrote to storage in the window */
WITH w AS (
    SELECT p.* FROM processes p JOIN snapshots s USING (host, snapshot_id)
    WHERE {w.sql('p.ts')} AND {_procs_filter()} AND p.read_bytes IS NOT NULL{narrow}
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


def memory_sql(w: Window, host: str | None = None) -> str:
    h = f" AND host = {_lit(host)}" if host else ""
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


def fd_limit_sql(w: Window, instance: dict | None = None) -> str:
    narrow = f" AND {_instance_where(instance, 'p')}" if instance else ""
    return f"""/* procsnap report: processes at their highest share of the soft fd limit in the window */
SELECT p.host, p.boot_id, p.pid, p.start_time, arg_max(p.name, p.ts) AS name, arg_max(p.cmdline, p.ts) AS cmdline,
       max(p.num_fds) AS fds_max, arg_max(p.ts, (p.num_fds, -epoch(p.ts))) AS fds_max_at,
       arg_max(p.fd_limit, (p.num_fds, -epoch(p.ts))) AS fd_limit,
       round(max(p.num_fds * 100.0 / p.fd_limit), 1) AS pct_of_limit_max
FROM processes p JOIN snapshots s USING (host, snapshot_id)
WHERE {w.sql('p.ts')} AND {_procs_filter()} AND p.fd_limit > 0 AND p.num_fds IS NOT NULL{narrow}
GROUP BY p.host, p.boot_id, p.pid, p.start_time
HAVING max(p.num_fds * 100.0 / p.fd_limit) >= {FD_LIMIT_WARN}
ORDER BY pct_of_limit_max DESC, p.pid"""


def file_max_sql(w: Window, host: str | None = None) -> str:
    h = f" AND host = {_lit(host)}" if host else ""
    return f"""/* procsnap report: host-wide file handles against fs.file-max */
SELECT host, max(file_handles) AS file_handles_max, arg_max(ts, (file_handles, -epoch(ts))) AS at,
       arg_max(file_max, (file_handles, -epoch(ts))) AS file_max,
       round(max(file_handles * 100.0 / file_max), 1) AS pct_max
FROM system WHERE {w.sql()} AND file_max > 0{h}
GROUP BY host ORDER BY host"""


def listen_queue_sql(w: Window, host: str | None = None, listener: dict | None = None) -> str:
    narrow = ""
    if host:
        narrow += f" AND host = {_lit(host)}"
    if listener:
        narrow += (f" AND local_addr = {_lit(listener['local_addr'])} AND local_port = {listener['local_port']}"
                   f" AND netns IS NOT DISTINCT FROM {_lit(listener['netns'])}")
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
    h = f" AND host = {_lit(host)}" if host else ""
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


def ctxsw_host_sql(w: Window, host: str | None = None) -> str:
    h = f" AND host = {_lit(host)}" if host else ""
    return f"""/* procsnap report: host context switches per second and per CPU */
SELECT host, count(ctxt_ps) AS samples, max(ncpus) AS ncpus, round(avg(ctxt_ps)) AS ctxt_ps_avg,
       round(max(ctxt_ps)) AS ctxt_ps_max, round(avg(ctxt_ps / ncpus)) AS per_cpu_avg, arg_max(ts, (ctxt_ps, -epoch(ts))) AS worst_at
FROM system_rates WHERE ctxt_ps IS NOT NULL AND {w.sql()}{h}
GROUP BY host ORDER BY host"""


def ctxsw_proc_sql(w: Window, instance: dict | None = None) -> str:
    narrow = f" AND {_instance_where(instance, 'p')}" if instance else ""
    return f"""/* procsnap report: context switches per second of each process instance over the window */
WITH w AS (
    SELECT p.* FROM processes p JOIN snapshots s USING (host, snapshot_id)
    WHERE {w.sql('p.ts')} AND {_procs_filter()} AND p.ctxsw_voluntary IS NOT NULL{narrow}
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


def _sev(value, warn, crit, higher=True):
    if value is None:
        return None
    if higher:
        return "critical" if crit is not None and value >= crit else "warning" if value >= warn else None
    return "critical" if crit is not None and value <= crit else "warning" if value <= warn else None


def _worst(*sevs):
    sevs = [s for s in sevs if s]
    return min(sevs, key=_SEV_RANK.get) if sevs else None


def _instance_of(r: dict, insts: dict) -> dict:
    key = (r["host"], r["boot_id"], r["pid"], r["start_time"])
    return _brief(insts.get(key) or r)


def _pegged(r: dict) -> bool:
    """A whole core (or more) kept busy for all the time the process was seen, however short
    that was within the window: from its first sample to its last (at least two, at least
    PROC_CPU_PEGGED_MIN_S apart)."""
    seen_s = (r["last_seen"] - r["first_seen"]).total_seconds()
    return (r["seen_cpu_pct"] or 0) >= PROC_CPU_PEGGED and r["samples"] >= 2 and seen_s >= PROC_CPU_PEGGED_MIN_S


def _bottlenecks(rec: Recording, w: Window, insts: dict) -> list[Finding]:
    out: list[Finding] = []
    top_cpu = _rows(rec, proc_cpu_sql(w))
    cpu_by_host = defaultdict(list)
    for r in top_cpu:
        cpu_by_host[r["host"]].append(r)
    saturated = set()

    for r in _rows(rec, host_cpu_sql(w)):
        h = r["host"]
        sql = host_cpu_sql(w, h)
        tops = [{"pid": c["pid"], "name": c["name"], "cpu_s": c["cpu_s"], "avg_cpu_pct": c["avg_cpu_pct"]}
                for c in cpu_by_host[h] if (c["avg_cpu_pct"] or 0) >= 1][:3]
        sev = _worst(_sev(r["busy_pct_avg"], CPU_BUSY_WARN, None), _sev(r["over_cores_share"], RUNQ_OVER_WARN, None),
                     _sev(r["psi_cpu_some_avg"], PSI_CPU_WARN, None))
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
        sev = _sev(r["steal_pct_avg"], STEAL_WARN, STEAL_CRIT)
        if sev:
            out.append(Finding("bottleneck", "cpu.steal", sev,
                               f"CPU steal: the hypervisor took {r['steal_pct_avg']}% of the CPUs on average "
                               f"(max {r['steal_pct_max']}%)", h, None, r, sql, score=r["steal_pct_avg"]))
        sev = _sev(r["iowait_pct_avg"], IOWAIT_WARN, IOWAIT_CRIT)
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
            sev = _sev(host_pct, PROC_HOST_WARN, PROC_HOST_CRIT) or \
                ("warning" if pegged or (h in saturated and i < 3) else "info")
            rated.append((sev, r, pegged))
        rated.sort(key=lambda t: (_SEV_RANK[t[0]], -(t[1]["cpu_s"] or 0)))
        for sev, r, pegged in rated[:PROC_CPU_TOP]:
            inst = _instance_of(r, insts)
            life = "from its start" if r["start_time"] >= w.start else "while seen"
            why = f" (kept a whole core busy {life}, {_fmt_secs(r['life_s'])})" if pegged else ""
            share = f", {r['host_cpu_pct']}% of the host's {r['ncpus']} cores" if r["host_cpu_pct"] is not None else ""
            out.append(Finding("bottleneck", "cpu.process", sev,
                               f"{r['name']} (pid {r['pid']}) used {r['cpu_s']} s of CPU, {r['avg_cpu_pct']}% of one "
                               f"core over the window{share}{why}", h, inst, r, proc_cpu_sql(w, inst),
                               score=r["cpu_s"]))

    for r in _rows(rec, d_state_sql(w)):
        if r["longest_run"] < D_STREAK_SNAPSHOTS or (r["longest_run_s"] or 0) < D_STREAK_WARN_S:
            continue
        sev = "critical" if r["longest_run_s"] >= D_STREAK_CRIT_S else "warning"
        inst = _instance_of(r, insts)
        out.append(Finding("bottleneck", "proc.d_state", sev,
                           f"{r['name']} (pid {r['pid']}) stuck in D state (uninterruptible) for "
                           f"{_fmt_secs(r['until'] - r['since'])}, {r['longest_run']} snapshots in a row "
                           f"({r['d_threads_max']} thread(s): {r['thread_names']})",
                           r["host"], inst, r, d_state_sql(w, inst), score=r["longest_run_s"]))

    disk_busy = set()
    for r in _rows(rec, disk_sql(w)):
        sev = _sev(r["util_pct_avg"], DISK_UTIL_WARN, DISK_UTIL_CRIT)
        if sev:
            disk_busy.add(r["host"])
            out.append(Finding("bottleneck", "io.disk", sev,
                               f"disk {r['device']} busy {r['util_pct_avg']}% of the time on average (max "
                               f"{r['util_pct_max']}%), average wait {r['await_ms_avg']} ms",
                               r["host"], None, r, disk_sql(w, r["host"], r["device"]), score=r["util_pct_avg"]))
    for r in _rows(rec, host_io_sql(w)):
        sev = _worst(_sev(r["psi_io_some_avg"], PSI_IO_WARN, None), _sev(r["psi_io_full_avg"], PSI_IO_FULL_CRIT, None))
        if sev and (r["psi_io_full_avg"] or 0) >= PSI_IO_FULL_CRIT:
            sev = "critical"
        if sev:
            disk_busy.add(r["host"])
            out.append(Finding("bottleneck", "io.pressure", sev,
                               f"I/O pressure: tasks stalled on I/O {r['psi_io_some_avg']}% of the time on average "
                               f"(PSI io some; full {r['psi_io_full_avg']}%)", r["host"], None, r,
                               host_io_sql(w, r["host"]), score=r["psi_io_some_avg"]))
    io_by_host = defaultdict(list)
    for r in _rows(rec, proc_io_sql(w)):
        io_by_host[r["host"]].append(r)
    for h, rows in io_by_host.items():
        for r in [r for r in rows if (r["storage_bps"] or 0) >= PROC_IO_LIST][:PROC_IO_TOP]:
            inst = _instance_of(r, insts)
            out.append(Finding("bottleneck", "io.process", "warning" if h in disk_busy else "info",
                               f"{r['name']} (pid {r['pid']}) moved {_fmt_bytes(r['storage_bps'])}/s to and from "
                               f"storage (read {_fmt_bytes(r['read_bytes'])}, wrote {_fmt_bytes(r['write_bytes'])})",
                               h, inst, r, proc_io_sql(w, inst), score=r["storage_bps"]))

    for r in _rows(rec, memory_sql(w)):
        sev = _worst(_sev(r["available_min_pct"], MEM_AVAIL_WARN, MEM_AVAIL_CRIT, higher=False),
                     _sev(r["swap_pages_ps_avg"], SWAP_PAGES_WARN, SWAP_PAGES_CRIT),
                     _sev(r["psi_memory_some_avg"], PSI_MEM_WARN, None),
                     _sev(r["psi_memory_full_avg"], PSI_MEM_FULL_CRIT, PSI_MEM_FULL_CRIT),
                     "critical" if (r["oom_kills"] or 0) > 0 else None)
        if not sev:
            continue
        parts = [f"available memory down to {_fmt_bytes(r['available_min'])} ({r['available_min_pct']}% of "
                 f"{_fmt_bytes(r['mem_total'])})"]
        if r["swap_pages_ps_avg"]:
            parts.append(f"swapping {r['swap_pages_ps_avg']} pages/s on average")
        if r["psi_memory_some_avg"] is not None:
            parts.append(f"PSI memory some {r['psi_memory_some_avg']}%, full {r['psi_memory_full_avg']}%")
        if r["oom_kills"]:
            parts.append(f"{r['oom_kills']} OOM kill(s)")
        out.append(Finding("bottleneck", "memory.pressure", sev, "memory pressure: " + ", ".join(parts),
                           r["host"], None, r, memory_sql(w, r["host"]), score=100 - (r["available_min_pct"] or 100)))

    for r in _rows(rec, fd_limit_sql(w)):
        sev = _sev(r["pct_of_limit_max"], FD_LIMIT_WARN, FD_LIMIT_CRIT)
        inst = _instance_of(r, insts)
        out.append(Finding("bottleneck", "fd.limit", sev,
                           f"{r['name']} (pid {r['pid']}) at {r['fds_max']} of its {r['fd_limit']} descriptors "
                           f"({r['pct_of_limit_max']}% of the soft limit)", r["host"], inst, r,
                           fd_limit_sql(w, inst), score=r["pct_of_limit_max"]))
    for r in _rows(rec, file_max_sql(w)):
        sev = _sev(r["pct_max"], FILE_MAX_WARN, FILE_MAX_CRIT)
        if sev:
            out.append(Finding("bottleneck", "fd.host", sev,
                               f"host file handles at {r['file_handles_max']} of fs.file-max {r['file_max']} "
                               f"({r['pct_max']}%)", r["host"], None, r, file_max_sql(w, r["host"]),
                               score=r["pct_max"]))

    for r in _rows(rec, listen_queue_sql(w)):
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

    for r in _rows(rec, ports_sql(w)):
        sev = _sev(r["pct_of_range"], PORTS_WARN, PORTS_CRIT)
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

    for r in _rows(rec, ctxsw_host_sql(w)):
        sev = _sev(r["per_cpu_avg"], CTXSW_HOST_WARN, CTXSW_HOST_CRIT)
        if sev:
            out.append(Finding("bottleneck", "ctxsw.host", sev,
                               f"context-switch storm: {r['ctxt_ps_avg']:,.0f}/s on average ({r['per_cpu_avg']:,.0f} "
                               f"per CPU, max {r['ctxt_ps_max']:,.0f}/s)", r["host"], None, r,
                               ctxsw_host_sql(w, r["host"]), score=r["per_cpu_avg"]))
    per_host = defaultdict(int)
    for r in _rows(rec, ctxsw_proc_sql(w)):
        if (r["per_s"] or 0) < CTXSW_PROC_WARN or per_host[r["host"]] >= CTXSW_PROC_TOP:
            continue
        per_host[r["host"]] += 1
        inst = _instance_of(r, insts)
        out.append(Finding("bottleneck", "ctxsw.process", "warning",
                           f"{r['name']} (pid {r['pid']}) switched context {r['per_s']:,.0f} times a second "
                           f"({r['involuntary_pct']}% involuntary: preempted)", r["host"], inst, r,
                           ctxsw_proc_sql(w, inst), score=r["per_s"]))
    return out


# --------------------------------------------------------------------------
# The report


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
    prints under `procsnap query` is what the report computed."""
    db = rec.query("SELECT current_database()")[1][0][0]
    made = []
    lo = (f"WITH lo AS (SELECT host, coalesce(max(ts) FILTER (WHERE ts < {ts_sql(w.start)}), min(ts)) AS lo "
          f"FROM {db}.main.snapshots GROUP BY host)")
    try:
        # snapshots last: the other views read it
        for name in [t for t in TABLES if t != "snapshots"] + ["snapshots"]:
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
        return _run(rec, w)


def _run(rec: Recording, w: Window) -> dict:
    snaps = _rows(rec, f"SELECT host, count(*) AS snapshots, min(ts) AS first, max(ts) AS last, "
                       f"sum(processes_denied) AS processes_denied, sum(open_files_denied) AS open_files_denied, "
                       f"sum(skipped) AS skipped FROM snapshots WHERE {w.sql()} GROUP BY host ORDER BY host")
    if not snaps:
        raise ProcsnapError(f"no snapshots between {w.start:%Y-%m-%d %H:%M:%S} and {w.end:%Y-%m-%d %H:%M:%S} UTC")
    inst_rows = _rows(rec, _instances_sql(w))
    insts = {(r["host"], r["boot_id"], r["pid"], r["start_time"]): r for r in inst_rows}
    fits = _rows(rec, leak_sql(w))
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
    pooled = _rows(rec, leak_sql(w, members=flat)) if flat else []
    findings = _leak_findings(rec, w, inst_rows, fits, pooled, members, ident_of)
    findings += _bottlenecks(rec, w, insts)
    from analyze.commands import report_host  # its rules build on this module's
    findings += report_host.findings(rec, w, insts)
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
        "recording": {"sources": [str(s) for s in rec.sources],
                      "hosts": [{"host": s["host"], "snapshots": s["snapshots"], "first": s["first"],
                                 "last": s["last"]} for s in snaps]},
        "window": {"from": w.start, "to": w.end, "seconds": round(w.seconds, 3),
                   "snapshots": sum(s["snapshots"] for s in snaps)},
        "summary": {"leaks": sum(f.category == "leak" for f in findings),
                    "bottlenecks": sum(f.category == "bottleneck" for f in findings),
                    **{s: sum(f.severity == s for f in findings) for s in SEVERITIES}},
        "findings": findings,
        "notes": notes,
    }


def denied_sql(w: Window, host: str) -> str:
    return f"""/* procsnap report: the process fields the kernel refused to the recorder (processes.denied), per process
   instance, and who the recorder ran as (its own row in processes; NULL where the recording lacks it) */
WITH recorder AS (
    SELECT list(DISTINCT p.uid ORDER BY p.uid) AS uids, list(DISTINCT p."user" ORDER BY p."user") AS users
    FROM processes p JOIN snapshots s USING (host, snapshot_id)
    WHERE {w.sql('p.ts')} AND p.host = {_lit(host)} AND p.pid = s.recorder_pid
),
d AS (
    SELECT p.boot_id, p.pid, p.start_time, arg_max(p.name, p.ts) AS name, arg_max(p.uid, p.ts) AS uid,
           arg_max(p."user", p.ts) AS "user", bool_or(p.pid = 2 OR p.ppid = 2) AS kernel_thread,
           count(DISTINCT p.snapshot_id) AS rows, list(DISTINCT src ORDER BY src) AS sources
    FROM processes p JOIN snapshots s USING (host, snapshot_id), unnest(string_split(p.denied, ',')) AS t(src)
    WHERE {w.sql('p.ts')} AND p.host = {_lit(host)} AND p.denied IS NOT NULL AND p.pid <> s.recorder_pid
    GROUP BY ALL
)
SELECT d.*, r.uids AS recorder_uids, r.users AS recorder_users FROM d, recorder r ORDER BY d.pid, d.start_time"""


def denied_note(rec: Recording, w: Window, host: str, rows_denied: int) -> str:
    """What the kernel refused, to whom and the likely why: root is only the remedy when the
    recorder did not run as root (its own process row says who it ran as)."""
    rows = _rows(rec, denied_sql(w, host))
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


def rank(findings: list[Finding]) -> list[Finding]:
    def key(f: Finding):
        if f.category == "leak":
            return (0, _SEV_RANK[f.severity], f.hours_left if f.hours_left is not None else math.inf, -f.score)
        return (1, _SEV_RANK[f.severity], KIND_ORDER.index(f.kind), -(f.score or 0))
    return sorted(findings, key=key)


def as_json(result: dict) -> dict:
    from analyze.output import _json_value
    d = dict(result)
    d["findings"] = [{"rank": i, **f.as_dict()} for i, f in enumerate(result["findings"], start=1)]
    return _json_value(d)


# --------------------------------------------------------------------------
# Text


def _fmt_bytes(n) -> str:
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _fmt_growth(measure: str, v) -> str:
    v = v or 0
    sign = "+" if v >= 0 else "-"
    return sign + (_fmt_bytes(abs(v)) if measure == "rss" else f"{abs(v):,.0f}")


def _fmt_rate(measure: str, per_hour) -> str:
    per_hour = _finite(per_hour) or 0
    return _fmt_bytes(per_hour) if measure == "rss" else f"{per_hour:,.0f}"


def _fmt_secs(d) -> str:
    s = d.total_seconds() if isinstance(d, dt.timedelta) else float(d)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def _fmt_hours(h: float) -> str:
    return _fmt_secs(h * 3600)


def _evidence_line(f: Finding) -> str:
    e = f.evidence
    if f.category == "leak" and e["level"] == "identity":
        m = e["measure"]
        return (f"{e['samples']} samples of {e['instances']} instances: "
                + ", ".join(f"pid {i['pid']} {_fmt_val(m, i['first'])} → {_fmt_val(m, i['last'])}"
                            for i in e["per_instance"])
                + f"; largest step {_fmt_val(m, e['largest_step'])}, {e['decreases']} of {e['steps']} steps down")
    if f.category == "leak":
        line = (f"{e['samples']} samples, {e['from']:%H:%M:%S} {_fmt_val(e['measure'], e['first'])} → "
                f"{e['to']:%H:%M:%S} {_fmt_val(e['measure'], e['last'])}, largest step "
                f"{_fmt_val(e['measure'], e['largest_step'])}, {e['decreases']} of {e['steps']} steps down")
        lim = e.get("limit") or {}
        if lim.get("value") is not None:
            line += f"; limit: {lim['what']} = {_fmt_val(e['measure'], lim['value'])}"
        if e.get("exhausted_at"):
            line += f", reached ≈ {e['exhausted_at']:%Y-%m-%d %H:%M} UTC"
        return line
    skip = {"host", "boot_id", "start_time", "cmdline", "top_processes", "netns", "pids", "pid", "name", "user",
            "first_seen", "last_seen"}
    parts = []
    for k, v in e.items():
        if k in skip or v is None:
            continue
        if isinstance(v, dt.datetime):
            v = f"{v:%H:%M:%S}"
        elif isinstance(v, float):
            v = f"{v:,.0f}" if abs(v) >= 10000 else f"{v:g}"
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10000 and not k.endswith(("port", "pid")):
            v = f"{v:,}"
        parts.append(f"{k}={v}")
    return ", ".join(parts)


def _fmt_val(measure: str, v) -> str:
    if v is None:
        return "-"
    return _fmt_bytes(v) if measure == "rss" else f"{v:,.0f}"


def text(result: dict, sql: bool = True) -> str:
    from analyze.output import escape
    w = result["window"]
    hosts = ", ".join(escape(h["host"]) for h in result["recording"]["hosts"])
    s = result["summary"]
    lines = [f"procsnap report: {hosts}: {w['from']:%Y-%m-%d %H:%M:%S} → {w['to']:%Y-%m-%d %H:%M:%S} UTC "
             f"({_fmt_secs(w['seconds'])}, {w['snapshots']} snapshots)",
             f"{s['leaks']} leak(s), {s['bottlenecks']} bottleneck(s): {s['critical']} critical, "
             f"{s['warning']} warning, {s['info']} info"]
    n = 0
    for cat, title in (("leak", "Leaks"), ("bottleneck", "Bottlenecks")):
        items = [f for f in result["findings"] if f.category == cat]
        lines.append("")
        lines.append(f"{title} ({len(items)}):" if items else f"{title}: none found")
        for f in items:
            n += 1
            lines.append(f"{n:>3}. {f.severity.upper():<8} {f.kind:<17} {escape(f.title)}")
            if f.process:
                p = f.process
                cmd = p.get("cmdline") or f"[{p.get('name')}]"
                if len(cmd) > 150:
                    cmd = cmd[:149] + "…"
                lines.append(f"{'':14}process: pid {p['pid']} {escape(p.get('name') or '')} ({escape(str(p.get('user')))}), "
                             f"started {p['start_time']:%Y-%m-%d %H:%M:%S}: {escape(cmd)}")
            lines.append(f"{'':14}evidence: {escape(_evidence_line(f))}")
            if sql:
                lines.append(f"{'':14}sql:")
                lines.extend(f"{'':18}{escape(ln)}" for ln in f.sql.splitlines())
    if result["notes"]:
        lines.append("")
        lines.append("Notes:")
        lines.extend(f"  - {escape(x)}" for x in result["notes"])
    return "\n".join(lines)
