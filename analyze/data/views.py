"""Derived views: rates computed in SQL from consecutive snapshots.

Counters are stored raw; a rate is the change between a row and the previous
row of the same entity (a process instance, a thread, a device, the host)
divided by the time between them. A counter that went backwards (a restart, a
reboot, a wrap) gives NULL, never a negative or garbage rate; so does the first
row of each entity.
"""

from __future__ import annotations

from recorder.schema import COUNTED, NET_COUNTERS


def _rate(col: str, per: str = "dt") -> str:
    return f"CASE WHEN {col} >= prev_{col} AND {per} > 0 THEN ({col} - prev_{col}) / {per} END"


def _lags(cols: list[str]) -> str:
    return ", ".join(f"LAG({c}) OVER w AS prev_{c}" for c in cols)


PROCESS_COUNTERS = ["utime", "stime", "read_bytes", "write_bytes", "rchar", "wchar", "syscr", "syscw",
                    "ctxsw_voluntary", "ctxsw_involuntary", "minflt", "majflt"]

def process_rates_select(source: str = "processes") -> str:
    """process_rates over SOURCE (the processes view, or a part of it holding whole instances:
    each rate needs the instance's previous row)."""
    return f"""
SELECT host, snapshot_id, ts, boot_id, pid, start_time, ppid, name, "user", cmdline, state,
       num_threads, rss, num_fds,
       dt AS interval_s,
       CASE WHEN utime >= prev_utime AND stime >= prev_stime AND dt > 0
            THEN ((utime - prev_utime) + (stime - prev_stime)) / dt * 100 END AS cpu_pct,
       {_rate("utime")} * 100 AS cpu_user_pct,
       {_rate("stime")} * 100 AS cpu_system_pct,
       {_rate("read_bytes")} AS read_bps,
       {_rate("write_bytes")} AS write_bps,
       {_rate("rchar")} AS rchar_ps,
       {_rate("wchar")} AS wchar_ps,
       {_rate("syscr")} AS syscr_ps,
       {_rate("syscw")} AS syscw_ps,
       {_rate("ctxsw_voluntary")} AS ctxsw_voluntary_ps,
       {_rate("ctxsw_involuntary")} AS ctxsw_involuntary_ps,
       {_rate("minflt")} AS minflt_ps,
       {_rate("majflt")} AS majflt_ps
FROM (
    SELECT *, epoch(ts) - epoch(LAG(ts) OVER w) AS dt, {_lags(PROCESS_COUNTERS)}
    FROM {source}
    WINDOW w AS (PARTITION BY host, boot_id, pid, start_time ORDER BY ts)
)
"""


PROCESS_RATES = "\nCREATE OR REPLACE VIEW process_rates AS" + process_rates_select()

# A table of the snapshots view's keys and what each took, made once when a recording is opened
# (analyze.data.db.Recording._view): the queries about one snapshot look snapshots up in it
# rather than read every snapshots file again.
COMMITTED = "committed_snapshots"


def took_table(table: str, host: str) -> str:
    """SQL: the ``snapshots`` row took TABLE (one of recorder.schema.COUNTED). A recording that
    never counts the table (hand-made, or older) took it on every snapshot of HOST."""
    return (f"({table}_seen IS NOT NULL OR NOT EXISTS (SELECT 1 FROM {COMMITTED} s2 "
            f"WHERE s2.host = {host} AND s2.{table}_seen IS NOT NULL))")


def rates_at(rec, table: str, moment, query, by_tid: bool = False) -> list[tuple]:
    """The rows of one snapshot with their rates: QUERY(source, only) is the query, over rates
    computed from the rows of SOURCE (a part of TABLE), whose rows end with whether the row had
    no previous row in SOURCE (dropped here); only(alias) is a further condition on its pids.

    The rates views sort every snapshot of the recording into their windows, while a rate needs
    only the previous row of its own instance: the source is the host's rows from the snapshot
    before this one up to this one, and the rows of an instance with no previous row there (new,
    or missed by the previous snapshot) are read again with every row of their pids, whole
    windows, which is what the view gives; an instance that started since the snapshot before has
    no older row, and is not. (procsnap's own SQL: Recording.query, not the gate of execute().)"""
    params = {"h": moment.host, "s": moment.snapshot_id, "t": moment.ts}
    # the snapshot before that took TABLE (the pre-trigger ring's frames take no threads)
    took = " AND " + took_table(table, "$h") if table in COUNTED else ""
    _, bounds = rec.query(f"SELECT (SELECT max(ts) FROM {table} WHERE host = $h AND snapshot_id = $s), "
                          f"(SELECT max(ts) FROM {COMMITTED} WHERE host = $h AND ts < $t{took})", params)
    hi, lo = bounds[0]
    key = {"h": moment.host, "s": moment.snapshot_id}
    none = lambda alias: ""  # noqa: E731
    if hi is None:  # no row here with a time: nothing to narrow by
        return [r[:-1] for r in rec.query(query(table, none), key)[1]]
    key["hi"] = hi
    if lo is None:  # the first snapshot: every earlier row of the host is in the source
        return [r[:-1] for r in rec.query(query(f"(SELECT * FROM {table} WHERE host = $h AND ts <= $hi)", none),
                                            key)[1]]
    key["lo"] = lo
    _, rows = rec.query(query(f"(SELECT * FROM {table} WHERE host = $h AND ts >= $lo AND ts <= $hi)", none), key)
    again = sorted({r[0] for r in rows if r[-1]})
    if again:
        # Only an instance that started before the snapshot before has older rows to look back to
        # (one that started since has none anywhere): those are read again over every file.
        same = " AND b.tid = a.tid" if by_tid else ""
        _, older = rec.query(
            f"SELECT DISTINCT a.pid FROM {table} a WHERE a.host = $h AND a.snapshot_id = $s "
            "AND list_contains($pids, a.pid) AND (a.start_time IS NULL OR a.start_time <= $lo) "
            f"AND NOT EXISTS (SELECT 1 FROM {table} b WHERE b.host = $h AND b.ts = $lo AND b.pid = a.pid{same} "
            "AND b.start_time IS NOT DISTINCT FROM a.start_time AND b.boot_id IS NOT DISTINCT FROM a.boot_id)",
            {"h": moment.host, "s": moment.snapshot_id, "pids": again, "lo": lo})
        again = sorted(r[0] for r in older)
    if again:
        _, redo = rec.query(
            # a rate looks back only: the rows after this snapshot's are not needed
            query(f"(SELECT * FROM {rec.whole(table)} WHERE host = $h AND list_contains($pids, pid) AND ts <= $hi)",
                  lambda alias: f" AND list_contains($pids, {alias}.pid)"),
            {"h": moment.host, "s": moment.snapshot_id, "pids": again, "hi": hi})
        gone = set(again)
        rows = [r for r in rows if r[0] not in gone] + redo
        rows.sort(key=(lambda r: (r[0], r[1])) if by_tid else (lambda r: r[0]))
    return [r[:-1] for r in rows]


THREAD_COUNTERS = ["utime", "stime", "ctxsw_voluntary", "ctxsw_involuntary", "minflt", "majflt"]

def thread_rates_select(source: str = "threads") -> str:
    """thread_rates over SOURCE (the threads view, or a part of it holding whole threads)."""
    return f"""
SELECT host, snapshot_id, ts, boot_id, pid, tid, start_time, name, state,
       dt AS interval_s,
       CASE WHEN utime >= prev_utime AND stime >= prev_stime AND dt > 0
            THEN ((utime - prev_utime) + (stime - prev_stime)) / dt * 100 END AS cpu_pct,
       {_rate("utime")} * 100 AS cpu_user_pct,
       {_rate("stime")} * 100 AS cpu_system_pct,
       {_rate("ctxsw_voluntary")} AS ctxsw_voluntary_ps,
       {_rate("ctxsw_involuntary")} AS ctxsw_involuntary_ps,
       {_rate("majflt")} AS majflt_ps
FROM (
    SELECT *, epoch(ts) - epoch(LAG(ts) OVER w) AS dt, {_lags(THREAD_COUNTERS)}
    FROM {source}
    WINDOW w AS (PARTITION BY host, boot_id, pid, tid, start_time ORDER BY ts)
)
"""


THREAD_RATES = "\nCREATE OR REPLACE VIEW thread_rates AS" + thread_rates_select()

# Guest time is already counted in user (and guest_nice in nice), so the
# total leaves them out, as top does.
BUSY_MODES = ["user", "nice", "system", "irq", "softirq", "steal"]
ALL_MODES = BUSY_MODES + ["idle", "iowait"]
TOTAL = " + ".join(f"cpu_{m}" for m in ALL_MODES)
PREV_TOTAL = " + ".join(f"prev_cpu_{m}" for m in ALL_MODES)
SAME_BOOT = "abs(epoch(boot_time) - epoch(prev_boot_time)) < 5"
SYSTEM_COUNTERS = [f"cpu_{m}" for m in ALL_MODES + ["guest"]] + [
    "ctxt", "intr", "forks", "pgfault", "pgmajfault", "pswpin", "pswpout", "oom_kill",
    "psi_cpu_some_total", "psi_memory_some_total", "psi_memory_full_total", "psi_io_some_total", "psi_io_full_total"]

_NO_BACKWARDS = " AND ".join(f"cpu_{m} >= prev_cpu_{m}" for m in ALL_MODES)

SYSTEM_RATES = f"""
CREATE OR REPLACE VIEW system_rates AS
SELECT host, snapshot_id, ts, ncpus, load1, load5, load15, procs_running, procs_blocked,
       mem_total, mem_available, swap_total, swap_free,
       dt AS interval_s,
       {", ".join(f"CASE WHEN ok THEN (cpu_{m} - prev_cpu_{m}) / dtotal * 100 END AS cpu_{m}_pct" for m in ALL_MODES)},
       CASE WHEN ok AND cpu_guest >= prev_cpu_guest THEN (cpu_guest - prev_cpu_guest) / dtotal * 100 END AS cpu_guest_pct,
       CASE WHEN ok THEN 100 - (cpu_idle - prev_cpu_idle + cpu_iowait - prev_cpu_iowait) / dtotal * 100 END AS cpu_busy_pct,
       {_rate("ctxt")} AS ctxt_ps,
       {_rate("intr")} AS intr_ps,
       {_rate("forks")} AS forks_ps,
       {_rate("pgfault")} AS pgfault_ps,
       {_rate("pgmajfault")} AS pgmajfault_ps,
       {_rate("pswpin")} AS pswpin_ps,
       {_rate("pswpout")} AS pswpout_ps,
       CASE WHEN oom_kill >= prev_oom_kill THEN oom_kill - prev_oom_kill END AS oom_kills,
       {_rate("psi_cpu_some_total")} / 10000 AS psi_cpu_some_pct,
       {_rate("psi_memory_some_total")} / 10000 AS psi_memory_some_pct,
       {_rate("psi_memory_full_total")} / 10000 AS psi_memory_full_pct,
       {_rate("psi_io_some_total")} / 10000 AS psi_io_some_pct,
       {_rate("psi_io_full_total")} / 10000 AS psi_io_full_pct
FROM (
    SELECT *, ({_NO_BACKWARDS} AND dtotal > 0 AND {SAME_BOOT}) AS ok
    FROM (
        SELECT *, ({TOTAL}) - ({PREV_TOTAL}) AS dtotal
        FROM (
            SELECT *, epoch(ts) - epoch(LAG(ts) OVER w) AS dt, LAG(boot_time) OVER w AS prev_boot_time,
                   {_lags(SYSTEM_COUNTERS)}
            FROM system
            WINDOW w AS (PARTITION BY host ORDER BY ts)
        )
    )
)
"""

DISK_COUNTERS = ["reads", "writes", "read_bytes", "write_bytes", "io_time_ms", "read_time_ms", "write_time_ms"]

DISK_RATES = f"""
CREATE OR REPLACE VIEW disk_rates AS
SELECT host, snapshot_id, ts, device, in_flight,
       dt AS interval_s,
       {_rate("reads")} AS reads_ps,
       {_rate("writes")} AS writes_ps,
       {_rate("read_bytes")} AS read_bps,
       {_rate("write_bytes")} AS write_bps,
       {_rate("io_time_ms")} / 10 AS util_pct,
       CASE WHEN reads + writes > prev_reads + prev_writes
                 AND read_time_ms + write_time_ms >= prev_read_time_ms + prev_write_time_ms
            THEN (read_time_ms + write_time_ms - prev_read_time_ms - prev_write_time_ms)
                 / (reads + writes - prev_reads - prev_writes) END AS await_ms
FROM (
    SELECT *, epoch(ts) - epoch(LAG(ts) OVER w) AS dt, {_lags(DISK_COUNTERS)}
    FROM disks
    WINDOW w AS (PARTITION BY host, device ORDER BY ts)
)
"""

NIC_COUNTERS = ["rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_errors", "tx_errors", "rx_dropped", "tx_dropped"]

NIC_RATES = f"""
CREATE OR REPLACE VIEW nic_rates AS
SELECT host, snapshot_id, ts, interface,
       dt AS interval_s,
       {", ".join(f"{_rate(c)} AS {c.replace('_bytes', '_bps').replace('_packets', '_pps').replace('_errors', '_errors_ps').replace('_dropped', '_dropped_ps')}" for c in NIC_COUNTERS)}
FROM (
    SELECT *, epoch(ts) - epoch(LAG(ts) OVER w) AS dt, {_lags(NIC_COUNTERS)}
    FROM nics
    WINDOW w AS (PARTITION BY host, interface ORDER BY ts)
)
"""

NETSTAT_COUNTERS = [c[0] for c in NET_COUNTERS if c[0] != "tcp_curr_estab"]

NETSTAT_RATES = f"""
CREATE OR REPLACE VIEW netstat_rates AS
SELECT host, snapshot_id, ts, tcp_curr_estab,
       dt AS interval_s,
       -- OutSegs excludes retransmissions: the share of all segments sent is RetransSegs over
       -- OutSegs + RetransSegs (never above 100 %).
       CASE WHEN ok AND tcp_retrans_segs >= prev_tcp_retrans_segs AND tcp_out_segs >= prev_tcp_out_segs
                 AND (tcp_out_segs - prev_tcp_out_segs) + (tcp_retrans_segs - prev_tcp_retrans_segs) > 0
            THEN (tcp_retrans_segs - prev_tcp_retrans_segs) * 100.0
                 / ((tcp_out_segs - prev_tcp_out_segs) + (tcp_retrans_segs - prev_tcp_retrans_segs)) END
           AS tcp_retrans_pct,
       {", ".join(f"CASE WHEN ok THEN {_rate(c)} END AS {c}_ps" for c in NETSTAT_COUNTERS)}
FROM (
    SELECT *, {SAME_BOOT} AS ok
    FROM (
        SELECT *, epoch(ts) - epoch(LAG(ts) OVER w) AS dt, LAG(boot_time) OVER w AS prev_boot_time,
               {_lags(NETSTAT_COUNTERS)}
        FROM system
        WINDOW w AS (PARTITION BY host ORDER BY ts)
    )
)
"""

# Each exit with the fork and exec of its pid before it (ASOF: the latest of each). An exec older
# than the process's fork (or, unread, its start time: seconds-grained boot time) was a previous
# process's with the same pid: its command line is not this one's.
_FRESH_EXEC = "e.exec_time >= coalesce(f.fork_time, x.start_time - INTERVAL 1 SECOND, e.exec_time)"

PROCESS_EXITS = f"""
CREATE OR REPLACE VIEW process_exits AS
WITH x AS (SELECT * FROM process_events WHERE kind = 'exit'),
f AS (SELECT host, boot_id, pid, time AS fork_time FROM process_events WHERE kind = 'fork'),
e AS (SELECT host, boot_id, pid, time AS exec_time, name AS exec_name, exe, cmdline, cwd, cgroup, uid AS exec_uid
      FROM process_events WHERE kind = 'exec')
SELECT x.host, x.boot_id, x.pid, x.ppid, x.start_time, coalesce(x.start_time, f.fork_time) AS started,
       x.time, coalesce(x.name, CASE WHEN {_FRESH_EXEC} THEN e.exec_name END) AS name,
       coalesce(x.uid, CASE WHEN {_FRESH_EXEC} THEN e.exec_uid END) AS uid,
       CASE WHEN {_FRESH_EXEC} THEN e.exe END AS exe,
       CASE WHEN {_FRESH_EXEC} THEN e.cmdline END AS cmdline,
       CASE WHEN {_FRESH_EXEC} THEN e.cwd END AS cwd,
       CASE WHEN {_FRESH_EXEC} THEN e.cgroup END AS cgroup,
       x.exit_status, x.signal, x.core_dumped,
       round(coalesce(x.elapsed, epoch(x.time) - epoch(coalesce(x.start_time, f.fork_time))), 3) AS lived_s,
       round(x.utime + x.stime, 3) AS cpu_s, x.utime, x.stime, x.max_rss, x.read_bytes, x.write_bytes,
       x.cpu_delay, x.blkio_delay, x.swapin_delay, x.unread
FROM x
ASOF LEFT JOIN f ON f.host = x.host AND f.boot_id = x.boot_id AND f.pid = x.pid AND f.fork_time <= x.time
ASOF LEFT JOIN e ON e.host = x.host AND e.boot_id = x.boot_id AND e.pid = x.pid AND e.exec_time <= x.time
"""

DERIVED = {
    "process_rates": (PROCESS_RATES, "Per process instance and snapshot: CPU % (of one core), I/O bytes/s, syscalls/s, context switches/s and faults/s since the previous snapshot of the same instance."),
    "thread_rates": (THREAD_RATES, "Per thread and snapshot: CPU % (of one core) and context switches/s since the previous snapshot."),
    "system_rates": (SYSTEM_RATES, "Per host and snapshot: CPU % by mode (of all CPUs, as top's %Cpu(s)), busy %, context switches, interrupts, forks, faults and swapping per second, and PSI stall %."),
    "disk_rates": (DISK_RATES, "Per block device and snapshot: reads/writes per second, bytes/s, %util and average wait."),
    "netstat_rates": (NETSTAT_RATES, "Per host and snapshot: the TCP/UDP stack counters of `system` (retransmits, listen-queue overflows and drops, SYN cookies, resets, UDP errors, ...) per second since the previous snapshot, as `<counter>_ps`, and retransmitted segments as a % of all segments sent, retransmissions included (`tcp_retrans_pct`: RetransSegs / (OutSegs + RetransSegs))."),
    "process_exits": (PROCESS_EXITS, "One row per process exit in process_events (`time` is the exit's), with what its fork and its last exec said: `started` (the start time, or the fork's time when it was not read), the exec's program, command line, cwd and cgroup (NULL when the last exec of that pid came before this process started: a previous process's), `lived_s` (the kernel's elapsed time, or exit minus start), `cpu_s` (user + system) and the kernel's exit accounting; `start_time` with boot_id and pid is the identity `processes` uses."),
    "nic_rates": (NIC_RATES, "Per interface and snapshot: bytes, packets, errors and drops per second."),
}
