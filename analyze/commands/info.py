"""What a recording holds: time span, hosts, rows and bytes per table, and
how complete its evidence is."""

from __future__ import annotations

import os

from recorder.schema import COUNTED, TABLES

from analyze.data.db import Recording
from analyze.data.remote import shown
from analyze.output import escape


def _size(path: str) -> int:
    """A file's size; 0 when a live recorder removed it since it was listed."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def summarize(rec: Recording) -> dict:
    def one(sql: str) -> tuple:
        return rec.query(sql)[1][0]

    n, start, end = one("SELECT count(*), min(ts), max(ts) FROM snapshots")
    hosts = [
        {"host": h, "snapshots": c, "start": s, "end": e, "boot_ids": b}
        for h, c, s, e, b in rec.query(
            "SELECT host, count(*), min(ts), max(ts), count(DISTINCT boot_id) FROM snapshots GROUP BY host ORDER BY host"
        )[1]
    ]
    tables = []
    for t in TABLES:
        rows = one(f"SELECT count(*) FROM {t}")[0]
        files = rec.files.get(t, [])  # the files read; the damaged are listed apart
        tables.append({"table": t, "rows": rows, "files": len(files), "bytes": sum(_size(f) for f in files)})
    sums = ", ".join(f"sum({t}_{k})" for t in COUNTED for k in ("seen", "gone", "denied"))
    vals = one(f"SELECT {sums}, sum(skipped), avg(duration_ms), avg(cpu_ms), max(duration_ms) FROM snapshots")
    completeness = {}
    i = 0
    for t in COUNTED:
        for k in ("seen", "gone", "denied"):
            completeness[f"{t}_{k}"] = vals[i]
            i += 1
    completeness["skipped_snapshots"] = vals[i]
    cost = {"avg_duration_ms": vals[i + 1], "avg_cpu_ms": vals[i + 2], "max_duration_ms": vals[i + 3]}
    # Each way the kernel log went ('read', or 'off: why'), on how many snapshots.
    kernel_log = [
        {"status": st, "snapshots": c, "dropped": d, "lost": lo}
        for st, c, d, lo in rec.query(
            "SELECT kernel_log, count(*), sum(events_dropped) - coalesce(sum(process_events_dropped), 0), "
            "sum(kernel_events_lost) FROM snapshots WHERE kernel_log IS NOT NULL GROUP BY 1 ORDER BY 1")[1]
    ]
    # The same for the process events, with whether exits had their taskstats accounting.
    process_events = [
        {"status": st, "exit_accounting": acc, "snapshots": c, "dropped": d, "lost": lo}
        for st, acc, c, d, lo in rec.query(
            "SELECT process_events, exit_accounting, count(*), sum(process_events_dropped), "
            "sum(process_events_lost) FROM snapshots WHERE process_events IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2")[1]
    ]
    from analyze.data.named import get_query
    cols, rows = rec.query(get_query("incidents").sql)
    incidents = [dict(zip(cols, r)) for r in rows]
    return {
        "sources": [shown(s) for s in rec.sources],
        "snapshots": n,
        "start": start,
        "end": end,
        "span_s": (end - start).total_seconds() if start else None,
        "hosts": hosts,
        "tables": tables,
        "completeness": completeness,
        "cost": cost,
        "kernel_log": kernel_log,
        "process_events": process_events,
        "incidents": incidents,
        "verified": rec.verified,
        "damaged": [{"path": d.path, "reason": d.reason} for d in rec.damaged],
        "ignored": [{"path": d.path, "reason": d.reason} for d in rec.ignored],
        "partial": [x.json() for x in rec.losses],
    }


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def text(s: dict) -> str:
    lines = [f"recording: {', '.join(map(escape, s['sources']))}"]
    damage = _damage_lines(s)
    if not s["snapshots"]:
        lines.append("snapshots: 0 (empty recording)")
        return "\n".join(lines + damage)
    lines.append(f"snapshots: {s['snapshots']} from {s['start']:%Y-%m-%d %H:%M:%S} to {s['end']:%Y-%m-%d %H:%M:%S} UTC"
                 f" ({s['span_s']:.0f} s)")
    for h in s["hosts"]:
        lines.append(f"host {escape(h['host'])}: {h['snapshots']} snapshots, {h['start']:%Y-%m-%d %H:%M:%S} .. "
                     f"{h['end']:%H:%M:%S}, {h['boot_ids']} boot(s)")
    lines.append("")
    lines.append(f"{'table':<12} {'rows':>10} {'files':>7} {'bytes':>10}")
    for t in s["tables"]:
        lines.append(f"{t['table']:<12} {t['rows']:>10} {t['files']:>7} {_fmt_bytes(t['bytes']):>10}")
    total = sum(t["bytes"] for t in s["tables"])
    lines.append(f"{'total':<12} {'':>10} {sum(t['files'] for t in s['tables']):>7} {_fmt_bytes(total):>10}"
                 f"  ({_fmt_bytes(total / s['snapshots'])} per snapshot)")
    c = s["completeness"]
    lines.append("")
    lines.append("completeness:")
    for t in COUNTED:
        seen, gone, denied = c[f"{t}_seen"], c[f"{t}_gone"], c[f"{t}_denied"]
        if seen is None:
            lines.append(f"  {t}: not collected")
            continue
        lines.append(f"  {t}: {seen} rows; {gone} vanished mid-read (skipped); {denied} with fields denied (NULL)")
    lines.append(f"  snapshots skipped because collection overran the interval: {c['skipped_snapshots'] or 0}")
    k = s["cost"]
    lines.append(f"collection cost: {k['avg_duration_ms']:.1f} ms wall, {k['avg_cpu_ms']:.1f} ms CPU per snapshot"
                 f" on average (slowest {k['max_duration_ms']:.1f} ms)")
    lines += _kernel_log_lines(s["kernel_log"])
    lines += _process_events_lines(s["process_events"])
    lines += _incident_lines(s["incidents"])
    return "\n".join(lines + damage)


def _incident_lines(incidents: list[dict]) -> list[str]:
    if not incidents:
        return ["incidents: none (no snapshot under the incident preset)"]
    out = [f"incidents: {len(incidents)} (procsnap query --name incidents)"]
    for i in incidents[:20]:
        out.append(f"  {escape(i['host'])} {i['started']:%Y-%m-%d %H:%M:%S} for {i['lasted_s']:g} s "
                   f"({i['snapshots']} snapshots, {i['firings']} trigger firings"
                   + (f", {i['ring_frames']} pre-trigger frames from {i['ring_from']:%H:%M:%S}" if i["ring_frames"] else "")
                   + f"): {escape(i['reason'] or '?')}")
    if len(incidents) > 20:
        out.append(f"  ... and {len(incidents) - 20} more")
    return out


def _kernel_log_lines(kl: list[dict]) -> list[str]:
    if not kl:
        return ["kernel log: not read (no snapshot of `procsnap record` that follows it)"]
    out = []
    for k in kl:
        if k["status"] == "read":
            out.append(f"kernel log: read on {k['snapshots']} snapshots; {k['dropped'] or 0} records dropped "
                       f"(buffer full), {k['lost'] or 0} lost (overwritten by the kernel before they were read)")
        else:
            out.append(f"kernel log: {escape(k['status'])} (on {k['snapshots']} snapshots)")
    return out


def _process_events_lines(pe: list[dict]) -> list[str]:
    if not pe:
        return ["process events: not read (no snapshot of `procsnap record` that listens to them)"]
    out = []
    for p in pe:
        if p["status"] == "read":
            acc = p["exit_accounting"] or "off"
            out.append(f"process events: read on {p['snapshots']} snapshots; {p['dropped'] or 0} dropped (buffer full), "
                       f"{p['lost'] or 0} lost (the kernel could not queue them); exit accounting (taskstats): "
                       f"{escape(acc)}")
        else:
            out.append(f"process events: {escape(p['status'])} (on {p['snapshots']} snapshots)")
    return out


def _damage_lines(s: dict) -> list[str]:
    from analyze.data.damage import Loss
    from analyze.output import escape
    out = [""]
    if s["verified"]:
        out.append("verified: every page of every file read, with its Parquet page checksum checked where it has one")
    else:
        out.append("not verified: names, sizes and footers checked only (without --no-verify every page is read)")
    damaged, ignored = s["damaged"], s["ignored"]
    if damaged:
        out.append(f"damaged: {len(damaged)} file(s) left out, the rest answers:")
        out += [f"  {escape(d['path'])}: {escape(d['reason'])}" for d in damaged]
    if ignored:
        out.append(f"ignored: {len(ignored)} file(s) not read, nothing lost:")
        out += [f"  {escape(d['path'])}: {escape(d['reason'])}" for d in ignored]
    if s["partial"]:
        out.append("PARTIAL: recorded rows unreadable, left out of every answer:")
        out += [f"  missing: {escape(Loss(x['table'], x['host'], _ts(x['from']), _ts(x['to']), x['snapshots']).line())}"
                for x in s["partial"]]
    return out


def _ts(text: str):
    import datetime as dt
    return dt.datetime.fromisoformat(text)
