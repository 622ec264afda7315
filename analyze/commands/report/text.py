"""A report as text (findings ranked, each with its evidence and SQL) and as JSON."""

from __future__ import annotations

import datetime as dt

from analyze.commands.report.fleet import lines as fleet_lines
from analyze.commands.report.fmt import fmt_secs, fmt_val
from analyze.commands.report.model import Finding


# The sections of a report, in the order of its ranking (model.rank).
CATEGORIES = (("leak", "Leaks"), ("bottleneck", "Bottlenecks"), ("incident", "Incidents"))


def as_json(result: dict) -> dict:
    from analyze.output import json_value
    d = dict(result)
    d["findings"] = [{"rank": i, **f.as_dict()} for i, f in enumerate(result["findings"], start=1)]
    return json_value(d)

def _evidence_line(f: Finding) -> str:
    e = f.evidence
    if f.category == "leak" and e["level"] == "identity":
        m = e["measure"]
        return (f"{e['samples']} samples of {e['instances']} instances: "
                + ", ".join(f"pid {i['pid']} {fmt_val(m, i['first'])} → {fmt_val(m, i['last'])}"
                            for i in e["per_instance"])
                + f"; largest step {fmt_val(m, e['largest_step'])}, {e['decreases']} of {e['steps']} steps down")
    if f.category == "leak":
        line = (f"{e['samples']} samples, {e['from']:%H:%M:%S} {fmt_val(e['measure'], e['first'])} → "
                f"{e['to']:%H:%M:%S} {fmt_val(e['measure'], e['last'])}, largest step "
                f"{fmt_val(e['measure'], e['largest_step'])}, {e['decreases']} of {e['steps']} steps down")
        lim = e.get("limit") or {}
        if lim.get("value") is not None:
            line += f"; limit: {lim['what']} = {fmt_val(e['measure'], lim['value'])}"
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

def text(result: dict, sql: bool = True) -> str:
    from analyze.output import escape
    w = result["window"]
    hosts = ", ".join(escape(h["host"]) for h in result["recording"]["hosts"])
    s = result["summary"]
    lines = [f"procsnap report: {hosts}: {w['from']:%Y-%m-%d %H:%M:%S} → {w['to']:%Y-%m-%d %H:%M:%S} UTC "
             f"({fmt_secs(w['seconds'])}, {w['snapshots']} snapshots)",
             (f"{s['incidents']} incident(s), " if s.get("incidents") or result.get("events") else "")
             + f"{s['leaks']} leak(s), {s['bottlenecks']} bottleneck(s): {s['critical']} critical, "
             f"{s['warning']} warning, {s['info']} info"]
    n = 0
    for cat, title in CATEGORIES:
        items = [f for f in result["findings"] if f.category == cat]
        if cat == "incident" and not items and not result.get("events"):
            continue  # a recording without process or kernel events: nothing to say
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
    if result.get("fleet"):
        lines.extend(fleet_lines(result["fleet"], escape))
    if result["notes"]:
        lines.append("")
        lines.append("Notes:")
        lines.extend(f"  - {escape(x)}" for x in result["notes"])
    return "\n".join(lines)
