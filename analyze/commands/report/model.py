"""What a report is made of: the window it covers, the Finding, severities and their order,
and the helpers every rule writes its SQL and reads its rows with."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass

from analyze.data.db import Recording
from analyze.data.sqltext import sql_str

SEVERITIES = ("critical", "warning", "info")
SEV_RANK = {s: i for i, s in enumerate(SEVERITIES)}

# Order of bottleneck kinds within one severity.
KIND_ORDER = ["memory.pressure", "fs.space", "fs.inodes", "fd.limit", "fd.host", "cpu.saturation", "proc.d_state",
              "net.listen_queue", "net.listen_overflow", "net.ports", "net.retransmits", "io.disk", "io.pressure",
              "cpu.steal", "cpu.iowait", "ctxsw.host", "cpu.process", "io.process", "ctxsw.process", "threads.wait",
              # incidents, from the events recorded between snapshots (report/events.py)
              "proc.oom_kill", "proc.crash_loop", "proc.hung_task", "proc.exec_storm", "proc.killed",
              # the recorder's own incident preset runs (their triggers)
              "recorder.incident"]


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
    category: str           # incident | leak | bottleneck
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

def lit(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, dt.datetime):
        return ts_sql(v)
    if isinstance(v, (int, float)):
        return repr(v)
    return sql_str(str(v))

def instance_where(inst: dict, alias: str = "") -> str:
    a = f"{alias}." if alias else ""
    return (f"{a}host = {lit(inst['host'])} AND {a}pid = {inst['pid']} AND {a}start_time = {lit(inst['start_time'])}"
            f" AND {a}boot_id IS NOT DISTINCT FROM {lit(inst['boot_id'])}")

def finite(v):
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None

def rounded(v, nd):
    v = finite(v)
    return None if v is None else round(v, nd)

def query_rows(rec: Recording, sql: str) -> list[dict]:
    cols, rows = rec.execute(sql)
    return [dict(zip(cols, r)) for r in rows]

def procs_filter(alias: str = "p") -> str:
    return f"{alias}.pid <> s.recorder_pid AND {alias}.pid <> 2 AND {alias}.ppid <> 2"

def brief(inst: dict) -> dict:
    return {k: inst.get(k) for k in ("host", "pid", "ppid", "name", "user", "start_time", "boot_id", "exe", "cmdline",
                                     "first_seen", "last_seen")}

def severity_of(value, warn, crit, higher=True):
    if value is None:
        return None
    if higher:
        return "critical" if crit is not None and value >= crit else "warning" if value >= warn else None
    return "critical" if crit is not None and value <= crit else "warning" if value <= warn else None

def worst(*sevs):
    sevs = [s for s in sevs if s]
    return min(sevs, key=SEV_RANK.get) if sevs else None

def instance_of(r: dict, insts: dict) -> dict:
    key = (r["host"], r["boot_id"], r["pid"], r["start_time"])
    return brief(insts.get(key) or r)

def rank(findings: list[Finding]) -> list[Finding]:
    def key(f: Finding):
        if f.category == "incident":  # listed after leaks and bottlenecks, in their own section
            return (2, SEV_RANK[f.severity], KIND_ORDER.index(f.kind), -(f.score or 0))
        if f.category == "leak":
            return (0, SEV_RANK[f.severity], f.hours_left if f.hours_left is not None else math.inf, -f.score)
        return (1, SEV_RANK[f.severity], KIND_ORDER.index(f.kind), -(f.score or 0))
    return sorted(findings, key=key)
