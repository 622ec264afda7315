"""Report rules on the host's file systems and TCP/UDP stack (one of analyze.commands.report's rule modules).

FILE SYSTEMS FILLING UP (``fs.space``, ``fs.inodes``). Each file system (one per device: a
device mounted at several points counts once, under its shortest mount point, as df shows it;
size-0 pseudo file systems and unmeasured mounts are left out) has two series over the window:
bytes used and inodes used. A series is filling when the leak rule of analyze.commands.report.leaks holds (the
same fit and step statistics, :func:`analyze.commands.report.leaks.trend_fit_sql` and
:func:`~analyze.commands.report.leaks.trend_verdict_sql`): enough samples, a rising well-fitting line, growth
spread over the window, and a net growth of at least ``FS_MIN_GROWTH`` and at least
``LEAK_MIN_RELATIVE`` (10 %) of what was free at the start of the window. Time to full: what is
available now (``avail``, to unprivileged users as df shows it; ``inodes_free``) over the fitted
rate; within ``LEAK_CRITICAL_HOURS`` it is critical, otherwise a warning. Each finding names the
processes writing the most on that file system (their I/O counters over the window, among the
processes with a file open for writing on its device in ``open_files``; bytes written to storage,
or, on tmpfs and ramfs, whose writes never reach storage, bytes passed to write()), and the
processes holding deleted-but-open files there (space that ``rm`` did not give back).

LISTEN-QUEUE OVERFLOWS (``net.listen_overflow``): any increase of TcpExt ListenOverflows or
ListenDrops in the window (a completed handshake or SYN dropped because a listener's queue was
full), critical from ``LISTEN_OVERFLOW_CRIT`` drops; the listeners that had connections waiting
in the overflowing intervals are named as suspects (the backlog itself is not recorded).

RETRANSMISSION SPIKES (``net.retransmits``): an interval whose retransmitted segments are at
least ``RETRANS_PCT_WARN`` % (critical ``RETRANS_PCT_CRIT`` %) of all the segments sent
(RetransSegs / (OutSegs + RetransSegs): the kernel's OutSegs excludes retransmissions), with at least
``RETRANS_MIN_SEGS`` retransmissions (a few retransmits of a few segments are noise).
"""

from __future__ import annotations

import datetime as dt

from analyze.commands.report.fmt import fmt_bytes, fmt_hours, fmt_secs
from analyze.commands.report.leaks import (LEAK_CRITICAL_HOURS, LEAK_MAX_GIVE_BACK, LEAK_MAX_STEP, LEAK_MIN_R2,
                                           LEAK_MIN_RELATIVE, LEAK_MIN_SAMPLES, LEAK_MIN_SPAN_S, trend_fit_sql,
                                           trend_verdict_sql)
from analyze.commands.report.model import Finding, Window, finite, lit, query_rows, rounded


FS_MIN_GROWTH = {"bytes": 8 << 20, "inodes": 100}
FS_TOP = 5                                      # writers and deleted-file holders named per finding
LISTEN_OVERFLOW_CRIT = 100                      # dropped connections in the window
RETRANS_PCT_WARN, RETRANS_PCT_CRIT = 2.0, 10.0  # % of all segments sent, in one interval
RETRANS_MIN_SEGS = 100                          # retransmitted segments in that interval

KINDS = ["fs.space", "fs.inodes", "net.listen_overflow", "net.retransmits"]


def _host(host: str | None, alias: str = "") -> str:
    return f" AND {alias}host = {lit(host)}" if host else ""


def _device(fs: dict | None, alias: str = "") -> str:
    a = f"{alias}." if alias else ""
    return f" AND {a}major = {int(fs['major'])} AND {a}minor = {int(fs['minor'])}" if fs else ""


def filling_sql(w: Window, host: str | None = None, fs: dict | None = None) -> str:
    floor = "CASE measure " + " ".join(f"WHEN '{m}' THEN {v}" for m, v in FS_MIN_GROWTH.items()) + " END"
    return f"""/* procsnap report: file systems filling up (bytes and inodes used, one row per device as df shows it).
   Filling when the leak rule holds: n >= {LEAK_MIN_SAMPLES} samples over >= {LEAK_MIN_SPAN_S:g} s, slope > 0, r2 >= {LEAK_MIN_R2},
   growth >= floor and >= {LEAK_MIN_RELATIVE:g} x what was free at the start, most steps not decreases,
   decreases <= {LEAK_MAX_GIVE_BACK:g} x increases, largest step <= {LEAK_MAX_STEP:g} x growth.
   hours_left: avail (bytes) or inodes_free now, over the fitted rate. */
WITH fs AS (
    SELECT host, snapshot_id, ts, major, minor, mount_point, source, fs_type, size, used, avail,
           inodes_total, inodes_used, inodes_free
    FROM filesystems
    WHERE size > 0 AND used IS NOT NULL AND {w.sql()}{_host(host)}{_device(fs)}
    QUALIFY row_number() OVER (PARTITION BY host, snapshot_id, major, minor
                               ORDER BY length(mount_point), mount_point) = 1
),
samples AS (
    UNPIVOT (SELECT host, major, minor, ts, used::DOUBLE AS bytes, inodes_used::DOUBLE AS inodes FROM fs)
    ON bytes, inodes INTO NAME measure VALUE value
),
steps AS (
    SELECT *, epoch(ts) AS x,
           value - lag(value) OVER (PARTITION BY host, major, minor, measure ORDER BY ts) AS step
    FROM samples
),
fit AS ({trend_fit_sql("host, major, minor")}),
dev AS (
    SELECT host, major, minor, arg_max(mount_point, ts) AS mount_point, arg_max(source, ts) AS source,
           arg_max(fs_type, ts) AS fs_type, arg_max(size, ts) AS size, arg_max(used, ts) AS used,
           arg_max(avail, ts) AS avail, arg_max(inodes_total, ts) AS inodes_total,
           arg_max(inodes_used, ts) AS inodes_used, arg_max(inodes_free, ts) AS inodes_free,
           arg_min(used, ts) AS first_used, arg_min(avail, ts) AS first_avail,
           arg_min(inodes_used, ts) AS first_inodes_used, arg_min(inodes_free, ts) AS first_inodes_free
    FROM fs GROUP BY ALL
),
judged AS (
    SELECT fit.*, dev.* EXCLUDE (host, major, minor),
           CASE measure WHEN 'bytes' THEN used - first_used ELSE inodes_used - first_inodes_used END AS growth,
           CASE measure WHEN 'bytes' THEN first_avail ELSE first_inodes_free END AS free_at_start,
           CASE measure WHEN 'bytes' THEN avail ELSE inodes_free END AS free_now
    FROM fit JOIN dev USING (host, major, minor)
)
SELECT *, {trend_verdict_sql("growth", floor, "free_at_start")} AS filling,
       CASE WHEN per_hour > 0 THEN free_now / per_hour END AS hours_left
FROM judged
ORDER BY filling DESC, hours_left NULLS LAST, host, major, minor, measure"""


def fs_writers_sql(w: Window, fs: dict) -> str:
    tmp = fs.get("fs_type") in ("tmpfs", "ramfs")
    order = "wchar DESC, write_bytes DESC" if tmp else "write_bytes DESC, wchar DESC"
    # The mount point is not written into the SQL: a user who can mount names it.
    return f"""/* procsnap report: processes writing the most on the file system of device {fs['major']},{fs['minor']} in the window:
   those with a file there open for writing (open_files), by {'bytes passed to write() (tmpfs writes never reach storage)' if tmp else 'bytes written to storage'} */
WITH writers AS (
    SELECT DISTINCT host, boot_id, pid, start_time
    FROM open_files
    WHERE device = '{int(fs['major'])},{int(fs['minor'])}' AND fd_num IS NOT NULL AND mode IN ('w', 'u')
      AND type = 'REG' AND {w.sql()}{_host(fs['host'])}
),
p AS (
    SELECT p.* FROM processes p JOIN writers USING (host, boot_id, pid, start_time)
    WHERE {w.sql('p.ts')}
)
SELECT host, boot_id, pid, start_time, arg_max(name, ts) AS name, arg_max("user", ts) AS "user",
       arg_max(write_bytes, ts) - arg_min(write_bytes, ts) AS write_bytes,
       arg_max(wchar, ts) - arg_min(wchar, ts) AS wchar, arg_max(cmdline, ts) AS cmdline
FROM p GROUP BY host, boot_id, pid, start_time
ORDER BY {order}, pid
LIMIT {FS_TOP}"""


def fs_deleted_sql(w: Window, fs: dict) -> str:
    return f"""/* procsnap report: deleted-but-open files on the file system of device {fs['major']},{fs['minor']} at the last
   snapshot of the window with open files: space rm did not give back while they stay open */
WITH last AS (
    SELECT max(ts) AS ts FROM open_files WHERE {w.sql()}{_host(fs['host'])}
)
SELECT o.host, o.boot_id, o.pid, o.start_time, any_value(p.name) AS name, count(*) AS files,
       sum(o.size) AS bytes, list(o.fd || ' ' || o.name ORDER BY o.size DESC NULLS LAST)[1:3] AS examples
FROM open_files o JOIN last USING (ts)
LEFT JOIN processes p ON p.host = o.host AND p.snapshot_id = o.snapshot_id AND p.pid = o.pid
                     AND p.start_time = o.start_time
WHERE o.deleted AND o.device = '{int(fs['major'])},{int(fs['minor'])}'{_host(fs['host'], 'o.')}
GROUP BY o.host, o.boot_id, o.pid, o.start_time
ORDER BY bytes DESC NULLS LAST, o.pid
LIMIT {FS_TOP}"""


def listen_overflow_sql(w: Window, host: str | None = None) -> str:
    return f"""/* procsnap report: TCP listen-queue overflows and drops (TcpExt ListenOverflows, ListenDrops) in the window,
   and the listeners with connections waiting to be accepted in the intervals that overflowed */
WITH r AS (
    SELECT host, ts, interval_s, round(tcp_listen_overflows_ps * interval_s) AS overflows,
           round(tcp_listen_drops_ps * interval_s) AS drops
    FROM netstat_rates WHERE {w.sql()}{_host(host)}
),
bad AS (SELECT * FROM r WHERE overflows > 0 OR drops > 0),
suspects AS (
    SELECT s.host, list(DISTINCT s.local_addr || ':' || s.local_port || ' pid ' || coalesce(s.pid::VARCHAR, '-')
                        || ' queued ' || s.rx_queue) AS listeners
    FROM sockets s JOIN bad b ON s.host = b.host AND s.ts = b.ts
    WHERE s.state = 'LISTEN' AND s.proto = 'TCP' AND s.rx_queue > 0
    GROUP BY s.host
)
SELECT r.host, count(*) AS intervals, count(*) FILTER (WHERE overflows > 0 OR drops > 0) AS intervals_dropping,
       sum(overflows)::BIGINT AS overflows, sum(drops)::BIGINT AS drops, max(overflows)::BIGINT AS overflows_max,
       arg_max(r.ts, (overflows, -epoch(r.ts))) AS worst_at, min(r.ts) FILTER (WHERE overflows > 0 OR drops > 0) AS first_at,
       any_value(s.listeners) AS listeners
FROM r LEFT JOIN suspects s USING (host)
GROUP BY r.host
HAVING sum(overflows) > 0 OR sum(drops) > 0
ORDER BY r.host"""


def retrans_sql(w: Window, host: str | None = None) -> str:
    return f"""/* procsnap report: TCP retransmissions per interval (Tcp RetransSegs against OutSegs + RetransSegs); a spike is an
   interval where >= {RETRANS_PCT_WARN:g} % of all the segments sent were retransmissions and >= {RETRANS_MIN_SEGS} retransmissions */
WITH r AS (
    SELECT host, ts, interval_s, tcp_retrans_pct, round(tcp_retrans_segs_ps * interval_s) AS retrans,
           round(tcp_out_segs_ps * interval_s) AS out_segs, round(tcp_timeouts_ps * interval_s) AS timeouts
    FROM netstat_rates WHERE tcp_retrans_pct IS NOT NULL AND {w.sql()}{_host(host)}
)
SELECT host, count(*) AS intervals,
       count(*) FILTER (WHERE tcp_retrans_pct >= {RETRANS_PCT_WARN} AND retrans >= {RETRANS_MIN_SEGS}) AS spikes,
       round(max(tcp_retrans_pct) FILTER (WHERE retrans >= {RETRANS_MIN_SEGS}), 2) AS retrans_pct_max,
       arg_max(ts, (tcp_retrans_pct, -epoch(ts))) FILTER (WHERE retrans >= {RETRANS_MIN_SEGS}) AS worst_at,
       round(sum(retrans) * 100.0 / nullif(sum(out_segs) + sum(retrans), 0), 2) AS retrans_pct_window,
       sum(retrans)::BIGINT AS retrans, sum(out_segs)::BIGINT AS out_segs, sum(timeouts)::BIGINT AS timeouts
FROM r GROUP BY host
ORDER BY host"""


def _has_open_files(rec, w: Window, host: str) -> bool:
    return bool(query_rows(rec, f"SELECT 1 FROM open_files WHERE {w.sql()}{_host(host)} LIMIT 1"))


def _fs_findings(rec, w: Window, insts: dict) -> list[Finding]:
    out = []
    for r in query_rows(rec, filling_sql(w)):
        if not r["filling"]:
            continue
        fs = {k: r[k] for k in ("host", "major", "minor", "mount_point", "fs_type")}
        hours = finite(r["hours_left"])
        sev = "critical" if hours is not None and hours <= LEAK_CRITICAL_HOURS else "warning"
        inodes = r["measure"] == "inodes"
        fmt = (lambda v: f"{v:,.0f}") if inodes else fmt_bytes
        what = "inodes" if inodes else "space"
        writers = query_rows(rec, fs_writers_sql(w, fs))
        deleted = query_rows(rec, fs_deleted_sql(w, fs))
        title = (f"file system {r['mount_point']} ({r['fs_type']}, {r['source']}) filling up: {what} used "
                 f"+{fmt(r['growth'])} in {fmt_secs(r['last_ts'] - r['first_ts'])} ({fmt(r['per_hour'])}/h, "
                 f"R² {r['r2']:.2f}), {fmt(r['free_now'])} left")
        if hours is not None:
            title += f"; full in ~{fmt_hours(hours)}"
        if writers:
            title += "; writing most: " + ", ".join(f"{x['name'] or '?'} (pid {x['pid']})" for x in writers[:3])
        if deleted:
            title += "; deleted files held open by " + ", ".join(
                f"{x['name'] or '?'} (pid {x['pid']}, {fmt_bytes(x['bytes'])})" for x in deleted[:3])
        ev = {"mount_point": r["mount_point"], "device": f"{r['major']},{r['minor']}", "fs_type": r["fs_type"],
              "measure": r["measure"], "samples": r["n"], "from": r["first_ts"], "to": r["last_ts"],
              "size" if not inodes else "inodes_total": r["size"] if not inodes else r["inodes_total"],
              "used_first" if not inodes else "inodes_used_first": r["first_used"] if not inodes else r["first_inodes_used"],
              "used_last" if not inodes else "inodes_used_last": r["used"] if not inodes else r["inodes_used"],
              "free_now": r["free_now"], "per_hour": rounded(r["per_hour"], 1), "r2": rounded(r["r2"], 3),
              "hours_left": rounded(hours, 3),
              "full_at": (r["last_ts"] + dt.timedelta(hours=hours)) if hours is not None and hours < 1e6 else None,
              "writers": [{k: x[k] for k in ("pid", "name", "user", "write_bytes", "wchar")} for x in writers],
              "deleted_open": [{k: x[k] for k in ("pid", "name", "files", "bytes", "examples")} for x in deleted]}
        if not writers and not deleted and not _has_open_files(rec, w, r["host"]):
            ev["writers_note"] = ("no descriptor snapshot in the window: writers and deleted-but-open files "
                                  "cannot be tied to this file system (record with --files-interval, or -i alone)")
        sql = ";\n\n".join((filling_sql(w, r["host"], fs), fs_writers_sql(w, fs), fs_deleted_sql(w, fs)))
        out.append(Finding("bottleneck", f"fs.{'inodes' if inodes else 'space'}", sev, title, r["host"], None,
                             ev, sql, score=1e9 - (hours if hours is not None else 1e9), hours_left=hours))
    return out


def _net_findings(rec, w: Window) -> list[Finding]:
    out = []
    for r in query_rows(rec, listen_overflow_sql(w)):
        n = max(r["overflows"] or 0, r["drops"] or 0)
        sev = "critical" if n >= LISTEN_OVERFLOW_CRIT else "warning"
        who = f"; listeners with connections waiting then: {', '.join(r['listeners'])}" if r["listeners"] else ""
        out.append(Finding("bottleneck", "net.listen_overflow", sev,
                             f"TCP listen queues overflowed: {r['overflows']} connections dropped because an accept "
                             f"queue was full (ListenOverflows), {r['drops']} SYNs or connections dropped at listeners "
                             f"(ListenDrops), in {r['intervals_dropping']} of {r['intervals']} intervals{who}",
                             r["host"], None, r, listen_overflow_sql(w, r["host"]), score=n))
    for r in query_rows(rec, retrans_sql(w)):
        if not r["spikes"]:
            continue
        sev = "critical" if (r["retrans_pct_max"] or 0) >= RETRANS_PCT_CRIT else "warning"
        out.append(Finding("bottleneck", "net.retransmits", sev,
                             f"TCP retransmission spike: up to {r['retrans_pct_max']}% of all the segments sent were "
                             f"retransmissions in one interval ({r['spikes']} of {r['intervals']} intervals over "
                             f"{RETRANS_PCT_WARN:g}%; {r['retrans_pct_window']}% over the window"
                             + (f", {r['timeouts']} retransmission timeouts)" if r["timeouts"] is not None else ")"),
                             r["host"], None, r, retrans_sql(w, r["host"]), score=r["retrans_pct_max"] or 0))
    return out


def findings(rec, w: Window, insts: dict) -> list[Finding]:
    """The findings of this module's rules over the window."""
    return _fs_findings(rec, w, insts) + _net_findings(rec, w)
