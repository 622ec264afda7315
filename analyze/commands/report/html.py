"""The report as one self-contained HTML page: findings with their evidence and
SQL, the host's CPU, memory and load over the window, and for each flagged
process its descriptors, RSS and CPU.

Charts are inline SVG drawn here (no chart library, no fonts, no images); a
few lines of inline script add a hover read-out and, once the page has laid
the charts out, set ``data-charts`` and ``data-charts-rendered`` on <html> (the
test's check that every chart was drawn). A Content-Security-Policy forbids
every fetch, so the page works offline and cannot leak what it shows.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import os
import tempfile

from analyze.data.db import Recording
from analyze.commands.report.fmt import fmt_bytes, fmt_secs
from analyze.commands.report.leaks import FD_KINDS
from analyze.commands.report.model import SEVERITIES, Finding, Window, instance_where

MAX_POINTS = 600          # per series; longer series are thinned (keeping each bucket's highest value)
MAX_PROCESSES = 12        # flagged processes that get charts
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22"]
SEV_COLORS = {"critical": "#b71c1c", "warning": "#e65100", "info": "#1565c0"}
UTC = dt.timezone.utc


def esc(v) -> str:
    """Text for the page: HTML-escaped, and escaped as on a terminal (analyze.output: no control
    or bidi character changes how the page shows a name)."""
    from analyze.output import escape_lines
    return html.escape(escape_lines("" if v is None else str(v)), quote=True)


# --------------------------------------------------------------------------
# Charts


def _nice(span: float, n: int = 5) -> float:
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


_TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]


def _time_ticks(x0: float, x1: float, n: int = 6) -> list[float]:
    span = max(x1 - x0, 1e-9)
    step = next((s for s in _TIME_STEPS if span / s <= n), 86400 * max(1, math.ceil(span / n / 86400)))
    t = math.ceil(x0 / step) * step
    out = []
    while t <= x1 + 1e-9:
        out.append(t)
        t += step
    return out


def _time_label(t: float, span: float) -> str:
    d = dt.datetime.fromtimestamp(t, UTC)
    if span > 2 * 86400:
        return d.strftime("%m-%d %H:%M")
    return d.strftime("%H:%M:%S") if span < 600 else d.strftime("%H:%M")


def fmt_value(v: float | None, unit: str) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    if unit == "bytes":
        return fmt_bytes(v)
    if unit == "%":
        return f"{v:.1f}%"
    if abs(v) >= 10000:
        return f"{v:,.0f}"
    return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else f"{int(v)}"


def _axis_value(v: float, unit: str, step: float) -> str:
    if unit == "bytes":
        for u, d in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if step >= d / 4 or abs(v) >= d:
                x = v / d
                return f"{x:.0f} {u}" if abs(x - round(x)) < 1e-6 else f"{x:.1f} {u}"
        return f"{v:.0f} B"
    if unit == "%":
        return f"{v:g}%"
    return f"{v:,.0f}" if abs(v) >= 1000 or v == int(v) else f"{v:g}"


def _thin(points: list[tuple[float, float | None]]) -> list[tuple[float, float | None]]:
    if len(points) <= MAX_POINTS:
        return points
    size = math.ceil(len(points) / MAX_POINTS)
    out = []
    for i in range(0, len(points), size):
        chunk = points[i:i + size]
        vals = [v for _, v in chunk if v is not None]
        out.append((chunk[-1][0], max(vals) if vals else None))
    return out


def chart(title: str, series: list[dict], x0: float, x1: float, unit: str, y_label: str,
          stacked: bool = False, refs: tuple = (), width: int = 560, height: int = 220) -> str:
    """An SVG line (or stacked area) chart. series: [{"label", "points": [(epoch_s, value|None)]}]."""
    ml, mr, mt, mb = 64, 14, 12, 36
    pw, ph = width - ml - mr, height - mt - mb
    if x1 <= x0:
        x1 = x0 + 1
    series = [dict(s, points=_thin(s["points"])) for s in series]
    if stacked:
        acc: dict[float, float] = {}
        for s in series:
            pts = []
            for t, v in s["points"]:
                base = acc.get(t, 0.0)
                top = base + (v or 0.0) if v is not None else None
                pts.append((t, base, top))
                if top is not None:
                    acc[t] = top
            s["stack"] = pts
    vals = [v for s in series for _, v in s["points"] if v is not None]
    if stacked:
        vals = [top for s in series for _, _, top in s["stack"] if top is not None]
    data_hi = max(vals) if vals else 0.0
    # a limit far above the data would flatten it: it is named in the caption instead
    off = [r for r in refs if r[1] is not None and data_hi > 0 and r[1] > 2 * data_hi]
    refs = tuple(r for r in refs if r[1] is not None and r not in off)
    vals += [r[1] for r in refs]
    hi = max(vals) if vals else 1.0
    lo = min(0.0, min(vals)) if vals else 0.0
    if unit == "%" and hi <= 100.5:
        hi = 100.0
    step = _nice(hi - lo or 1.0)
    hi = math.ceil(hi / step) * step if hi > lo else lo + step
    if hi <= lo:
        hi = lo + step

    def X(t):
        return ml + (t - x0) / (x1 - x0) * pw

    def Y(v):
        return mt + ph - (v - lo) / (hi - lo) * ph

    parts = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'aria-label="{esc(title)}" class="chart-svg">']
    # grid and y axis
    parts.append('<g class="axis y">')
    v = lo
    while v <= hi + step / 1000:
        y = Y(v)
        parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{ml - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(_axis_value(v, unit, step))}</text>')
        v += step
    parts.append(f'<text class="label" transform="translate(12 {mt + ph / 2:.0f}) rotate(-90)" '
                 f'text-anchor="middle">{esc(y_label)}</text></g>')
    # x axis
    span = x1 - x0
    parts.append('<g class="axis x">')
    for t in _time_ticks(x0, x1):
        x = X(t)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{mt}" y2="{mt + ph}" class="grid"/>'
                     f'<text x="{x:.1f}" y="{mt + ph + 15}" text-anchor="middle">{esc(_time_label(t, span))}</text>')
    parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{mt + ph}" y2="{mt + ph}" class="base"/>'
                 f'<text class="label" x="{ml + pw / 2:.0f}" y="{height - 4}" text-anchor="middle">time (UTC)</text>'
                 '</g>')
    # references (limits)
    for label, value in refs:
        if value is None or not (lo <= value <= hi):
            continue
        y = Y(value)
        parts.append(f'<g class="ref"><line x1="{ml}" x2="{ml + pw}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text x="{ml + pw - 4}" y="{y - 4:.1f}" text-anchor="end">{esc(label)}</text></g>')
    # series
    parts.append('<g class="series">')
    for i, s in enumerate(series):
        color = s.get("color") or PALETTE[i % len(PALETTE)]
        if stacked:
            runs, cur = [], []
            for t, base, top in s["stack"]:
                if top is None:
                    if cur:
                        runs.append(cur)
                    cur = []
                else:
                    cur.append((t, base, top))
            if cur:
                runs.append(cur)
            for run in runs:
                pts = [f"{X(t):.1f},{Y(top):.1f}" for t, _, top in run] + \
                      [f"{X(t):.1f},{Y(base):.1f}" for t, base, _ in reversed(run)]
                parts.append(f'<polygon points="{" ".join(pts)}" fill="{color}" fill-opacity="0.75" '
                             f'stroke="{color}" stroke-width="0.5"><title>{esc(s["label"])}</title></polygon>')
            continue
        d, pen = [], False
        for t, val in s["points"]:
            if val is None:
                pen = False
                continue
            d.append(f"{'L' if pen else 'M'}{X(t):.1f} {Y(val):.1f}")
            pen = True
        if not d:
            continue
        dash = ' stroke-dasharray="5 3"' if s.get("dashed") else ""
        parts.append(f'<path d="{" ".join(d)}" fill="none" stroke="{color}" stroke-width="1.8"{dash}>'
                     f'<title>{esc(s["label"])}</title></path>')
        if len(d) == 1:
            t, val = next((t, v) for t, v in s["points"] if v is not None)
            parts.append(f'<circle cx="{X(t):.1f}" cy="{Y(val):.1f}" r="2.5" fill="{color}"/>')
    parts.append('</g>')
    parts.append(f'<line class="cursor" x1="0" x2="0" y1="{mt}" y2="{mt + ph}" visibility="hidden"/>')
    parts.append('</svg>')
    # hover read-out: one row per distinct time
    times = sorted({t for s in series for t, _ in s["points"]})
    lookup = [{t: v for t, v in s["points"]} for s in series]
    tips = []
    for t in times:
        row = "  ".join(f"{s['label']}: {fmt_value(lk.get(t), unit)}" for s, lk in zip(series, lookup)
                        if lk.get(t) is not None)
        tips.append([round(X(t), 1), f"{_time_label(t, 0)}  {row}"])
    legend = "".join(
        f'<span class="key"><i style="background:{s.get("color") or PALETTE[i % len(PALETTE)]}"></i>'
        f'{esc(s["label"])}</span>' for i, s in enumerate(series))
    return (f'<figure class="chart" data-tips="{esc(json.dumps(tips, separators=(",", ":")))}">'
            f'<figcaption><b>{esc(title)}</b> <span class="legend">{legend}</span>'
            + "".join(f' <span class="off">{esc(label)} {esc(fmt_value(v, unit))}: off the chart</span>'
                      for label, v in off)
            + '</figcaption>'
            + "".join(parts) + '<div class="tip"></div></figure>')


# --------------------------------------------------------------------------
# Data


def _epoch(t: dt.datetime) -> float:
    return t.timestamp()


def host_series(rec: Recording, host: str, w: Window) -> list[dict]:
    rows = rec.query(
        f"""SELECT ts, cpu_user_pct + cpu_nice_pct, cpu_system_pct + cpu_irq_pct + cpu_softirq_pct, cpu_iowait_pct,
                   cpu_steal_pct, mem_total, mem_available, swap_total - swap_free, load1, greatest(procs_running - 1, 0),
                   ncpus, psi_cpu_some_pct, psi_memory_some_pct
            FROM system_rates WHERE host = $h AND {w.sql()} ORDER BY ts""", {"h": host})[1]
    return [dict(zip(("ts", "user", "system", "iowait", "steal", "total", "available", "swap", "load1", "runq",
                      "ncpus", "psi_cpu", "psi_mem"), r)) for r in rows]


def process_series(rec: Recording, w: Window, instances: list[dict]) -> dict:
    """Per instance: ts, fds (and by kind), rss, cpu %."""
    if not instances:
        return {}
    cond = " OR ".join(f"({instance_where(i, 'p')})" for i in instances)
    kinds = ", ".join(f"count(*) FILTER (WHERE {c}) AS {m}" for m, c in FD_KINDS.items())
    rows = rec.query(f"""
        WITH f AS (
            SELECT host, snapshot_id, pid, start_time, {kinds}
            FROM open_files WHERE fd_num IS NOT NULL AND {w.sql()} GROUP BY ALL
        )
        SELECT p.host, p.pid, p.start_time, p.ts, p.num_fds, p.rss, r.cpu_pct, {", ".join(f"f.{m}" for m in FD_KINDS)}
        FROM processes p
        LEFT JOIN process_rates r ON r.host = p.host AND r.snapshot_id = p.snapshot_id AND r.pid = p.pid
        LEFT JOIN f ON f.host = p.host AND f.snapshot_id = p.snapshot_id AND f.pid = p.pid AND f.start_time = p.start_time
        WHERE {w.sql('p.ts')} AND ({cond})
        ORDER BY p.ts""")[1]
    out: dict = {}
    for r in rows:
        key = (r[0], r[1], r[2])
        d = out.setdefault(key, {"ts": [], "fds": [], "rss": [], "cpu": [], **{m: [] for m in FD_KINDS}})
        d["ts"].append(_epoch(r[3]))
        d["fds"].append(r[4])
        d["rss"].append(r[5])
        d["cpu"].append(r[6])
        for m, v in zip(FD_KINDS, r[7:]):
            d[m].append(v or 0 if r[4] is not None else None)
    return out


# --------------------------------------------------------------------------
# Page


CSS = """
:root { --fg:#1d232b; --muted:#5d6b7a; --line:#d9dee5; --bg:#f5f7fa; --card:#fff; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); background: var(--bg); }
header { background: #17212b; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 20px; font-weight: 600; }
header .meta { color: #b8c4d0; font-size: 13px; }
main { max-width: 1240px; margin: 0 auto; padding: 16px 28px 48px; }
h2 { font-size: 17px; margin: 28px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 6px 0; }
.badges span { display: inline-block; margin-right: 8px; padding: 2px 10px; border-radius: 12px; color: #fff;
               font-size: 12px; font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 12px; }
figure.chart { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px;
               position: relative; }
figure.chart svg { width: 100%; height: auto; display: block; }
figcaption { font-size: 13px; margin-bottom: 2px; }
.legend { color: var(--muted); font-size: 12px; }
.off { color: #b71c1c; font-size: 11.5px; margin-left: 8px; }
.key { margin-left: 10px; white-space: nowrap; }
.key i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
svg text { font-size: 10.5px; fill: #4a5663; }
svg .label { font-size: 11px; fill: #2b3640; }
svg .grid { stroke: #e8ebef; stroke-width: 1; }
svg .base { stroke: #9aa5b1; }
svg .ref line { stroke: #b71c1c; stroke-dasharray: 6 4; stroke-width: 1.2; }
svg .ref text { fill: #b71c1c; font-size: 10.5px; }
svg .cursor { stroke: #17212b; stroke-width: 1; stroke-dasharray: 2 2; }
.tip { position: absolute; left: 70px; top: 30px; background: rgba(23,33,43,.92); color: #fff; font-size: 11.5px;
       padding: 3px 7px; border-radius: 4px; pointer-events: none; display: none; white-space: pre; }
.finding { background: var(--card); border: 1px solid var(--line); border-left: 5px solid; border-radius: 6px;
           padding: 10px 14px; margin: 10px 0; }
.finding .head { display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
.sev { font-size: 11px; font-weight: 700; text-transform: uppercase; color: #fff; padding: 1px 8px; border-radius: 10px; }
.kind { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; color: var(--muted); }
.title { font-weight: 600; }
.proc { color: var(--muted); font-size: 12.5px; margin-top: 3px; word-break: break-all; }
.ev { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 2px 16px; margin: 8px 0;
      font-size: 12.5px; }
.ev span { color: var(--muted); }
.ev .wide { grid-column: 1 / -1; }
.finding .charts { margin-top: 8px; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); }
details { margin-top: 6px; }
summary { cursor: pointer; color: #1565c0; font-size: 12.5px; }
pre { background: #f0f3f7; border: 1px solid var(--line); padding: 8px; overflow-x: auto; font-size: 11.5px; }
.none { color: var(--muted); }
.notes li { color: var(--muted); }
a { color: #1565c0; }
"""

SCRIPT = """
(function () {
  function ready() {
    var figs = document.querySelectorAll('figure.chart');
    var drawn = 0;
    figs.forEach(function (fig) {
      var svg = fig.querySelector('svg');
      var box = svg.getBoundingClientRect();
      var marks = svg.querySelectorAll('.series path, .series polygon, .series circle').length;
      if (box.width > 0 && box.height > 0 && marks > 0) { drawn++; }
      var tips = JSON.parse(fig.getAttribute('data-tips') || '[]');
      var tip = fig.querySelector('.tip');
      var cursor = svg.querySelector('.cursor');
      var vb = svg.viewBox.baseVal;
      svg.addEventListener('mousemove', function (ev) {
        if (!tips.length) { return; }
        var r = svg.getBoundingClientRect();
        var x = (ev.clientX - r.left) * vb.width / r.width;
        var best = tips[0];
        for (var i = 1; i < tips.length; i++) {
          if (Math.abs(tips[i][0] - x) < Math.abs(best[0] - x)) { best = tips[i]; }
        }
        cursor.setAttribute('x1', best[0]);
        cursor.setAttribute('x2', best[0]);
        cursor.setAttribute('visibility', 'visible');
        tip.textContent = best[1];
        tip.style.display = 'block';
      });
      svg.addEventListener('mouseleave', function () {
        cursor.setAttribute('visibility', 'hidden');
        tip.style.display = 'none';
      });
    });
    document.documentElement.setAttribute('data-charts', String(figs.length));
    document.documentElement.setAttribute('data-charts-rendered', String(drawn));
  }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', ready);
  } else {
    ready();
  }
})();
"""


def _host_charts(rec: Recording, host: str, w: Window) -> str:
    rows = host_series(rec, host, w)
    x0, x1 = _epoch(w.start), _epoch(w.end)
    ts = [_epoch(r["ts"]) for r in rows]

    def pts(key, f=lambda v: v):
        return [(t, None if r[key] is None else f(r[key])) for t, r in zip(ts, rows)]
    ncpus = rows[-1]["ncpus"] if rows else None
    total = rows[-1]["total"] if rows else None
    cpu = chart("CPU (% of all CPUs)", [
        {"label": "user", "points": pts("user"), "color": "#1f77b4"},
        {"label": "system", "points": pts("system"), "color": "#d62728"},
        {"label": "iowait", "points": pts("iowait"), "color": "#ff7f0e"},
        {"label": "steal", "points": pts("steal"), "color": "#7f7f7f"},
    ], x0, x1, "%", "CPU %", stacked=True)
    mem_series = [
        {"label": "used (total − available)", "points": [(t, None if r["available"] is None else r["total"] - r["available"])
                                                        for t, r in zip(ts, rows)], "color": "#9467bd"},
        {"label": "available", "points": pts("available"), "color": "#2ca02c"},
    ]
    if any(r["swap"] for r in rows):
        mem_series.append({"label": "swap used", "points": pts("swap"), "color": "#d62728"})
    mem = chart("Memory", mem_series, x0, x1, "bytes", "bytes", refs=(("MemTotal", total),))
    load_series = [{"label": "load1", "points": pts("load1"), "color": "#1f77b4"},
                   {"label": "run queue", "points": pts("runq"), "color": "#ff7f0e"}]
    load = chart("Load and run queue", load_series, x0, x1, "count", "tasks",
                 refs=((f"{ncpus} CPUs", ncpus),) if ncpus else ())
    charts = [cpu, mem, load]
    if any(r["psi_cpu"] is not None for r in rows):
        charts.append(chart("Pressure stall (PSI, some)", [
            {"label": "cpu", "points": pts("psi_cpu"), "color": "#1f77b4"},
            {"label": "memory", "points": pts("psi_mem"), "color": "#9467bd"},
        ], x0, x1, "%", "% of time stalled"))
    return '<div class="charts">' + "".join(charts) + "</div>"


def _proc_key(f: Finding):
    p = f.process
    if p.get("instances"):
        return (f.host, "identity", tuple((i["pid"], str(i["start_time"])) for i in p["instances"]))
    return (f.host, "instance", p["pid"], str(p["start_time"]))


def _proc_charts(rec: Recording, w: Window, p: dict, series: dict) -> str:
    x0, x1 = _epoch(w.start), _epoch(w.end)
    insts = p.get("instances") or [p]
    keys = [(i["host"], i["pid"], i["start_time"]) for i in insts]
    data = [(i, series.get(k)) for i, k in zip(insts, keys) if series.get(k)]
    if not data:
        return '<p class="none">no samples in the window</p>'
    fd_limit = None
    if len(data) == 1:
        d = data[0][1]
        fds = [{"label": "all descriptors", "points": list(zip(d["ts"], d["fds"])), "color": "#17212b"}]
        for j, m in enumerate(FD_KINDS):
            if any(d[m]):
                fds.append({"label": m.removeprefix("fds_").replace("_", " "), "points": list(zip(d["ts"], d[m])),
                            "color": PALETTE[j % len(PALETTE)], "dashed": True})
        rss = [{"label": "RSS", "points": list(zip(d["ts"], d["rss"])), "color": "#9467bd"}]
        cpu = [{"label": "CPU", "points": list(zip(d["ts"], d["cpu"])), "color": "#1f77b4"}]
    else:
        fds, rss, cpu = [], [], []
        for j, (i, d) in enumerate(data):
            c = PALETTE[j % len(PALETTE)]
            fds.append({"label": f"pid {i['pid']}", "points": list(zip(d["ts"], d["fds"])), "color": c})
            rss.append({"label": f"pid {i['pid']}", "points": list(zip(d["ts"], d["rss"])), "color": c})
            cpu.append({"label": f"pid {i['pid']}", "points": list(zip(d["ts"], d["cpu"])), "color": c})
    fd_limit = p.get("_fd_limit")
    return ('<div class="charts">'
            + chart("Descriptors", fds, x0, x1, "count", "descriptors",
                    refs=(("soft fd limit", fd_limit),) if fd_limit else ())
            + chart("Resident memory (RSS)", rss, x0, x1, "bytes", "bytes")
            + chart("CPU (% of one core)", cpu, x0, x1, "%", "CPU %")
            + "</div>")


_BYTES_KEYS = {"first", "last", "growth", "largest_step", "per_hour", "available_min", "mem_total", "swap_used_max",
               "read_bytes", "write_bytes", "storage_bps", "rchar", "wchar", "read_bps_avg", "write_bps_avg"}
_SKIP = {"per_instance", "host", "boot_id", "pid", "name", "user", "cmdline", "start_time", "first_seen", "last_seen",
         "top_processes", "netns", "leak"}


def _ev_value(f: Finding, k: str, v) -> str:
    e = f.evidence
    rss = e.get("measure") == "rss"
    if k == "by_kind":
        return ", ".join(f"{kk} +{vv['growth']:,.0f} ({vv['per_hour']:,.0f}/h, R² {vv['r2']:.2f})"
                         for kk, vv in v.items()) or "–"
    if k == "limit":
        val = v.get("value")
        val = "–" if val is None else (fmt_bytes(val) if rss else f"{val:,.0f}")
        return f"{v.get('what')}: {val}"
    if k == "hours_left":
        return f"{fmt_secs(v * 3600)}"
    if k.endswith(("port", "pid")):
        return str(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool) and (k in _BYTES_KEYS and (rss or f.category != "leak")):
        return fmt_bytes(v) + ("/h" if k == "per_hour" else "/s" if k.endswith("bps") or k.endswith("_bps_avg") else "")
    if k == "per_hour":
        return f"{v:,.1f}/h"
    if isinstance(v, list):
        return ", ".join(str(x) for x in v)
    return _cell(v)


def _evidence_table(f: Finding) -> str:
    cells = []
    for k, v in f.evidence.items():
        if v is None or k in _SKIP:
            continue
        text = _ev_value(f, k, v)
        wide = ' class="wide"' if k in ("by_kind", "limit") or len(text) > 40 else ""
        cells.append(f'<div{wide}><span>{esc(k.replace("_", " "))}</span> {esc(text)}</div>')
    if f.evidence.get("per_instance"):
        m = f.evidence.get("measure")
        cells.append('<div class="wide"><span>per instance</span> ' + esc(", ".join(
            f"pid {i['pid']}: {_fmtm(m, i['first'])} → {_fmtm(m, i['last'])}" for i in f.evidence["per_instance"]))
            + "</div>")
    if f.evidence.get("top_processes"):
        cells.append('<div class="wide"><span>top processes</span> ' + esc(", ".join(
            f"{t['name']} (pid {t['pid']}) {t['cpu_s']} s" for t in f.evidence["top_processes"])) + "</div>")
    return '<div class="ev">' + "".join(cells) + "</div>"


def _fmtm(measure, v):
    return fmt_bytes(v) if measure == "rss" else f"{v:,.0f}"


def _cell(v) -> str:
    if isinstance(v, dt.datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10000 else str(v)
    return str(v)


def _finding_html(n: int, f: Finding, charts: str, see: str | None) -> str:
    color = SEV_COLORS[f.severity]
    proc = ""
    if f.process:
        p = f.process
        cmd = p.get("cmdline") or f"[{p.get('name')}]"
        proc = (f'<div class="proc">pid {esc(p["pid"])} {esc(p.get("name"))} ({esc(p.get("user"))}), started '
                f'{esc(_cell(p.get("start_time")))}: {esc(cmd)}'
                + (f' · charts: <a href="#{see}">above</a>' if see else "") + "</div>")
    return (f'<div class="finding" style="border-left-color:{color}" id="finding-{n}">'
            f'<div class="head"><span class="sev" style="background:{color}">{esc(f.severity)}</span>'
            f'<span class="kind">{n}. {esc(f.kind)}</span><span class="title">{esc(f.title)}</span></div>'
            f'{proc}{_evidence_table(f)}{charts}'
            f'<details><summary>SQL that reproduces it (paste into procsnap query --rec DIR)</summary>'
            f'<pre>{esc(f.sql)}</pre></details>'
            "</div>")


def render(rec: Recording, result: dict) -> str:
    w = Window(result["window"]["from"], result["window"]["to"])
    findings: list[Finding] = result["findings"]
    hosts = [h["host"] for h in result["recording"]["hosts"]]
    s = result["summary"]
    # the flagged processes, in rank order: charts go with the first finding of each
    first_of: dict = {}
    for n, f in enumerate(findings, start=1):
        if f.process and len(first_of) < MAX_PROCESSES:
            first_of.setdefault(_proc_key(f), n)
    fd_limits: dict = {}
    for f in findings:
        if f.process:
            lim = (f.evidence.get("limit") or {}).get("value") if f.kind in ("leak.fds", "leak.close_wait") \
                else f.evidence.get("fd_limit")
            fd_limits.setdefault(_proc_key(f), lim) if lim else None
    all_insts = []
    for f in findings:
        if f.process and first_of.get(_proc_key(f)) is not None:
            all_insts += f.process.get("instances") or [f.process]
    series = process_series(rec, w, all_insts)

    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
           "script-src 'unsafe-inline'; img-src data:\">",
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<link rel="icon" href="data:,">',
           f"<title>procsnap report: {esc(', '.join(hosts))} {w.start:%Y-%m-%d %H:%M}</title>",
           f"<style>{CSS}</style>", "</head>", "<body>", "<header>",
           f"<h1>procsnap report: {esc(', '.join(hosts))}</h1>",
           f'<div class="meta">{w.start:%Y-%m-%d %H:%M:%S} → {w.end:%Y-%m-%d %H:%M:%S} UTC · '
           f'{esc(fmt_secs(result["window"]["seconds"]))} · {result["window"]["snapshots"]} snapshots · '
           f'{esc(", ".join(result["recording"]["sources"]))}</div>',
           "</header>", "<main>",
           '<div class="badges" style="margin-top:8px">'
           + "".join(f'<span style="background:{SEV_COLORS[sv]}">{s[sv]} {sv}</span>' for sv in SEVERITIES)
           + (f' {s["incidents"]} incident(s),' if s.get("incidents") or result.get("events") else "")
           + f' {s["leaks"]} leak(s), {s["bottlenecks"]} bottleneck(s)</div>']
    from analyze.data.damage import LOSSES
    if LOSSES:  # said before any finding: an answer without these rows may miss what they held
        out.append('<div class="partial" role="alert" style="border:2px solid #b71c1c;padding:6px 10px;margin:8px 0">'
                   "<strong>PARTIAL report:</strong> recorded rows were unreadable and are left out "
                   "(procsnap info lists the damaged files):<ul>"
                   + "".join(f"<li>missing: {esc(x.line())}</li>" for x in LOSSES) + "</ul></div>")
    for h in hosts:
        out.append(f"<h2>Host {esc(h)}: CPU, memory and load</h2>")
        out.append(_host_charts(rec, h, w))
    n = 0
    from analyze.commands.report.text import CATEGORIES
    for cat, title in CATEGORIES:
        items = [f for f in findings if f.category == cat]
        if cat == "incident" and not items and not result.get("events"):
            continue
        out.append(f"<h2>{title} ({len(items)})</h2>")
        if not items:
            out.append('<p class="none">none found</p>')
        for f in items:
            n += 1
            charts, see = "", None
            if f.process:
                k = _proc_key(f)
                first = first_of.get(k)
                if first == n:
                    p = dict(f.process, _fd_limit=fd_limits.get(k))
                    charts = _proc_charts(rec, w, p, series)
                elif first is not None:
                    see = f"finding-{first}"
            out.append(_finding_html(n, f, charts, see))
    if result.get("fleet"):
        from analyze.commands.report.fleet import lines as fleet_lines
        out.append("<h2>Fleet</h2><ul class=\"notes\">"
                   + "".join(f"<li>{esc(x.strip())}</li>" for x in fleet_lines(result["fleet"], str)[2:]) + "</ul>")
    if result["notes"]:
        out.append("<h2>Notes</h2><ul class=\"notes\">" + "".join(f"<li>{esc(x)}</li>" for x in result["notes"])
                   + "</ul>")
    out += [f"<script>{SCRIPT}</script>", "</main>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


def write(path: str, page: str) -> None:
    """Write PAGE to PATH readable by its owner only (0600, like the recording: the page holds
    command lines). The page goes to a new file made next to PATH with O_EXCL and O_NOFOLLOW
    (tempfile.mkstemp), then renamed over PATH: whatever PATH was, a link planted there included,
    is replaced, never followed or written through."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
