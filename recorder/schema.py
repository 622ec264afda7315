"""The data contract: every table procsnap writes, declared once, as data.

Each column has a name, an Arrow type (by short name), a unit and one sentence
that says what NULL means. The Parquet writer, the DuckDB views and the schema
reference in ``docs/schema.md`` are all derived from this module; nothing else
spells out a column list.

Conventions (shared with the analyzer and the docs):

* every row carries ``snapshot_id``, ``ts`` and ``host``; ``host`` and ``date``
  are hive partition columns, so they live in the folder names, not inside the
  Parquet files (Spark and Trino refuse a column that is in both);
* counters are raw and cumulative, exactly as the kernel reports them; rates
  are derived later, in SQL;
* names and paths come in two columns: ``x`` is text (UTF-8, any byte that is
  not valid UTF-8 written as ``\\xNN``) and ``x_raw`` holds the exact bytes
  whenever the text is not their lossless decoding, and is NULL otherwise.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (3 ms of a snapshot's start)

if TYPE_CHECKING:
    import pyarrow as pa

_ARROW: dict = {}


def arrow_types() -> dict:
    """Each declared type as Arrow's. pyarrow is imported here, on first use, not with the schema:
    a live `procsnap lsof -p PID` reads the declaration but never builds a table."""
    if not _ARROW:
        import pyarrow as pa
        _ARROW.update({
            "int32": pa.int32(),
            "int64": pa.int64(),
            "float64": pa.float64(),
            "bool": pa.bool_(),
            "string": pa.string(),
            "binary": pa.binary(),
            "timestamp": pa.timestamp("us", tz="UTC"),
            "date": pa.date32(),
        })
    return _ARROW

# DuckDB's spelling of each type, for typed empty views and NULL fillers.
SQL_TYPES = {
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "string": "VARCHAR",
    "binary": "BLOB",
    "timestamp": "TIMESTAMPTZ",
    "date": "DATE",
}


class _Record:
    """A small immutable record compared by its fields: what a frozen dataclass gives, without
    importing dataclasses (and inspect through it: 5 ms of every one-shot snapshot's start)."""

    __slots__ = ()

    def _key(self) -> tuple:
        return tuple(getattr(self, k) for k in self.__slots__)

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in self.__slots__)})"

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")


class Column(_Record):
    __slots__ = ("name", "type", "unit", "description", "partition")

    def __init__(self, name: str, type: str, unit: str, description: str, partition: bool = False):
        for k, v in zip(self.__slots__, (name, type, unit, description, partition)):
            object.__setattr__(self, k, v)

    @property
    def arrow_type(self) -> pa.DataType:
        return arrow_types()[self.type]

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.type]


class Table(_Record):
    __slots__ = ("name", "row", "description", "columns")  # row: "one row per ..."

    def __init__(self, name: str, row: str, description: str, columns: tuple[Column, ...] = ()):
        for k, v in zip(self.__slots__, (name, row, description, columns)):
            object.__setattr__(self, k, v)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def stored_columns(self) -> list[Column]:
        """Columns written inside the Parquet files (partition columns are not)."""
        return [c for c in self.columns if not c.partition]

    def arrow_schema(self) -> pa.Schema:
        import pyarrow as pa
        return pa.schema([pa.field(c.name, c.arrow_type) for c in self.stored_columns])

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def C(name: str, type: str, unit: str, description: str, partition: bool = False) -> Column:
    return Column(name, type, unit, description, partition)


def _text_pair(name: str, what: str, null: str) -> tuple[Column, Column]:
    """A name or path as text, and its exact bytes when the text is lossy."""
    return (
        C(name, "string", "text", f"{what}, as UTF-8 with any invalid byte written \\xNN; NULL {null}."),
        C(
            f"{name}_raw",
            "binary",
            "bytes",
            f"The exact bytes behind {name} (for cmdline: /proc/PID/cmdline, arguments NUL-separated); NULL when {name} already gives them back exactly (almost always).",
        ),
    )


COMMON = (
    C("snapshot_id", "int64", "µs since epoch", "Identifies the snapshot within its host: the UTC start time of the snapshot in microseconds; never NULL."),
    C("ts", "timestamp", "UTC, µs", "When the snapshot started; never NULL."),
    C("host", "string", "text", "Host name the snapshot was taken on (hive partition `host=`); never NULL.", partition=True),
    C("date", "date", "UTC day", "UTC day of `ts` (hive partition `date=`); never NULL.", partition=True),
)

IDENTITY_NOTE = "(`boot_id`, `pid`, `start_time`) identifies a process instance; pid alone is reused."

# Tables whose collection is timed and whose rows are counted in `snapshots`.
COLLECTED = ("system", "disks", "nics", "filesystems", "processes", "threads", "open_files", "sockets")

# Tables with per-row race accounting (seen/gone/denied) in `snapshots`.
COUNTED = ("processes", "threads", "open_files", "sockets")


def _snapshot_columns() -> tuple[Column, ...]:
    cols = [
        C("boot_id", "string", "uuid", "Kernel boot id (/proc/sys/kernel/random/boot_id); NULL if unreadable."),
        C("kernel", "string", "text", "Kernel release (uname -r); never NULL."),
        C("procsnap_version", "string", "text", "Version of the recorder that wrote the snapshot; never NULL."),
        C("reader", "string", "text", "What read the processes and threads: 'C' (procsnap's C module) or 'psutil' (no C module: the columns psutil does not give are NULL, as their descriptions say); NULL in recordings made before procsnap recorded it."),
        C("interval_s", "float64", "s", "Requested interval between snapshots; NULL for a one-off `procsnap snapshot`."),
        C("duration_ms", "float64", "ms", "Wall time the whole snapshot took to collect; never NULL."),
        C("cpu_ms", "float64", "ms", "CPU time (user+system) the recorder spent collecting this snapshot; never NULL."),
        C("recorder_pid", "int32", "pid", "Process id of the recorder; never NULL."),
        C("recorder_rss", "int64", "bytes", "Resident memory of the recorder after the snapshot; NULL if unreadable."),
        C("skipped", "int64", "count", "Snapshots skipped just before this one because collection overran the interval (0 when none); on the last snapshot of a recording with a duration, also those skipped after it up to the duration's end; never NULL."),
        C("write_ms_prev", "float64", "ms", "Wall time `procsnap record` spent writing the previous snapshot to disk; NULL for the first snapshot of a run and for `procsnap snapshot`."),
        C("maintenance_ms", "float64", "ms", "Wall time `procsnap record` spent compacting and applying retention since the previous snapshot (0 when it did none); NULL outside `procsnap record`."),
        C("dropped", "int64", "count", "Snapshots collected just before this one but not written because the disk was full (0 when none); NULL outside `procsnap record`."),
        C("incident", "bool", "flag", "True when taken under the incident preset (everything every 2 s); NULL outside `procsnap record`."),
        C("incident_reason", "string", "text", "Why this snapshot was taken under the incident preset: '--incident', 'SIGHUP' or 'incident file' for one a person started, else the trigger that started or last extended it, with its value and threshold (e.g. 'psi_cpu: 97.5 over 80 (...)'; the `triggers` table has every firing); NULL when `incident` is not true."),
        C("triggers", "string", "text", "Whether `procsnap record` watched its triggers ('armed', with the ones that could not be armed and why in parentheses, e.g. a kernel without PSI), NULL when they were not armed (`--no-triggers`, or a recording with its own -i and no --triggers), outside `procsnap record`, and in recordings made before triggers existed."),
        C("thread_samples", "int64", "count", "Samples of the threads taken since the previous snapshot (`thread_samples` rows come from them); 0 when the sampler did not run; NULL outside `procsnap record`."),
        C("thread_samples_dropped", "int64", "count", "Sampled thread rows not stored because the buffer between snapshots was full; NULL outside `procsnap record`."),
                C("early", "string", "code", "Why `procsnap record` took this snapshot before its slot: 'events' when an event buffer (kernel_events, process_events) held half its capacity, so that a sustained burst of events is written rather than dropped (at most one early snapshot every 10 s); 'stop' for the last snapshot, taken when SIGINT or SIGTERM came between two snapshots, so that the events held since the previous one are written; 'ring' for a frame of the pre-trigger ring (host counters and processes only, no threads or descriptors, taken every 15 s while triggers are armed, held in memory and written when an incident started: its `ts` is when it was taken); NULL for a snapshot on its slot, and outside `procsnap record`."),
        C("kernel_log", "string", "text", "Whether `procsnap record` followed the kernel log into `kernel_events`: 'read', or 'off: ' and why (no /dev/kmsg, or kernel.dmesg_restrict refusing a user without CAP_SYSLOG); NULL outside `procsnap record` (a one-off `procsnap snapshot` does not read it) and in recordings made before procsnap read it."),
        C("events_dropped", "int64", "count", "Kernel log records and process events read since the previous snapshot but not stored because the recorder's buffers between snapshots were full (0 when none; `process_events_dropped` says how many of them were process events); NULL when neither the kernel log nor the process events were read."),
        C("kernel_events_lost", "int64", "count", "Kernel log records the kernel overwrote in its ring buffer before the recorder read them, counted from the gaps in their sequence numbers (0 when none; after a restart, also those of the same boot written while no recorder ran); NULL when the kernel log was not read."),
        C("process_events", "string", "text", "Whether `procsnap record` listened to the kernel's process events into `process_events`: 'read', or 'off: ' and why (not permitted: the connector wants CAP_NET_ADMIN on older kernels; a kernel without CONFIG_PROC_EVENTS; a recorder outside the host's pid namespace, which the kernel does not tell); NULL outside `procsnap record` and in recordings made before procsnap listened."),
        C("exit_accounting", "string", "text", "Whether exit rows of `process_events` got the kernel's taskstats exit records: 'read', or 'off: ' and why (a kernel without CONFIG_TASKSTATS, not permitted without CAP_NET_ADMIN, outside the host's pid namespace, or 'needs the C module': the C module is the one reader of the records, and a recorder without it, not built or PROCSNAP_NATIVE=0, leaves exits' accounting NULL); NULL when the process events were not read."),
        C("process_events_dropped", "int64", "count", "Process events received since the previous snapshot but not stored because the recorder's buffer was full (part of `events_dropped`; 0 when none); NULL when the process events were not read."),
        C("process_events_lost", "int64", "count", "Process events the kernel sent but could not queue to the recorder (its socket buffer full: ENOBUFS), counted from the gaps in the connector's per-CPU sequence numbers (0 when none); NULL when the process events were not read."),
    ]
    for t in COLLECTED:
        cols.append(C(f"ms_{t}", "float64", "ms", f"Wall time spent collecting `{t}`; NULL when the table was not collected."))
    for t in COUNTED:
        cols.append(C(f"{t}_seen", "int64", "count", f"Rows written to `{t}` in this snapshot; NULL when not collected."))
        cols.append(C(f"{t}_gone", "int64", "count", f"Entries of `{t}` that vanished mid-read and were skipped; NULL when not collected."))
        cols.append(C(f"{t}_denied", "int64", "count", f"Rows of `{t}` with at least one field left NULL by a permission denial; NULL when not collected."))
    return tuple(cols)


def _psi_columns() -> list[Column]:
    cols = []
    for res in ("cpu", "memory", "io"):
        for kind in ("some", "full"):
            cols.append(C(f"psi_{res}_{kind}_avg10", "float64", "%", f"Pressure stall information, {res} {kind}, 10 s average; NULL where the kernel has no PSI."))
            cols.append(C(f"psi_{res}_{kind}_total", "int64", "µs", f"Pressure stall information, {res} {kind}, cumulative stall time; NULL where the kernel has no PSI."))
    return cols



# Host TCP/UDP stack counters of the recorder's network namespace, as system columns:
# (column, file under /proc/net, section (snmp, netstat) or None (snmp6), kernel field, meaning).
# Every one is cumulative since the namespace was created, except tcp_curr_estab (a gauge); a
# field the kernel does not have (older kernels lack some) is NULL.
NET_COUNTERS = (
    ("tcp_active_opens", "snmp", "Tcp", "ActiveOpens", "TCP connections this host opened (SYN sent: CLOSED -> SYN_SENT)"),
    ("tcp_passive_opens", "snmp", "Tcp", "PassiveOpens", "TCP connections accepted from a listener (LISTEN -> SYN_RECV)"),
    ("tcp_attempt_fails", "snmp", "Tcp", "AttemptFails", "TCP connection attempts that failed (SYN_SENT or SYN_RECV -> CLOSED, SYN_RECV -> LISTEN)"),
    ("tcp_estab_resets", "snmp", "Tcp", "EstabResets", "TCP connections reset from ESTABLISHED or CLOSE_WAIT"),
    ("tcp_curr_estab", "snmp", "Tcp", "CurrEstab", "TCP connections in ESTABLISHED or CLOSE_WAIT right now (a gauge, not a counter)"),
    ("tcp_in_segs", "snmp", "Tcp", "InSegs", "TCP segments received, errors included"),
    ("tcp_out_segs", "snmp", "Tcp", "OutSegs", "TCP segments sent, retransmissions excluded"),
    ("tcp_retrans_segs", "snmp", "Tcp", "RetransSegs", "TCP segments retransmitted"),
    ("tcp_in_errs", "snmp", "Tcp", "InErrs", "TCP segments received in error (bad checksum, bad header, ...)"),
    ("tcp_out_rsts", "snmp", "Tcp", "OutRsts", "TCP segments sent with the RST flag"),
    ("tcp_in_csum_errors", "snmp", "Tcp", "InCsumErrors", "TCP segments received with a bad checksum"),
    ("tcp_listen_overflows", "netstat", "TcpExt", "ListenOverflows", "Completed handshakes dropped because a listener's accept queue was full (its backlog)"),
    ("tcp_listen_drops", "netstat", "TcpExt", "ListenDrops", "SYNs and completed handshakes dropped at a listener for any reason, overflows included"),
    ("tcp_syncookies_sent", "netstat", "TcpExt", "SyncookiesSent", "SYN cookies sent because a listener's SYN queue was full"),
    ("tcp_syncookies_recv", "netstat", "TcpExt", "SyncookiesRecv", "Valid SYN cookies received back"),
    ("tcp_syncookies_failed", "netstat", "TcpExt", "SyncookiesFailed", "Invalid SYN cookies received"),
    ("tcp_req_q_full_drop", "netstat", "TcpExt", "TCPReqQFullDrop", "SYNs dropped because a listener's SYN queue was full and SYN cookies were off"),
    ("tcp_timeouts", "netstat", "TcpExt", "TCPTimeouts", "TCP retransmission timer expirations"),
    ("tcp_syn_retrans", "netstat", "TcpExt", "TCPSynRetrans", "SYN and SYN-ACK retransmissions"),
    ("tcp_fast_retrans", "netstat", "TcpExt", "TCPFastRetrans", "TCP fast retransmissions"),
    ("tcp_lost_retransmit", "netstat", "TcpExt", "TCPLostRetransmit", "TCP retransmissions lost again"),
    ("tcp_abort_on_data", "netstat", "TcpExt", "TCPAbortOnData", "TCP connections reset because data arrived after the application closed"),
    ("tcp_abort_on_close", "netstat", "TcpExt", "TCPAbortOnClose", "TCP connections reset because the application closed with unread data"),
    ("tcp_abort_on_memory", "netstat", "TcpExt", "TCPAbortOnMemory", "TCP connections reset for lack of memory"),
    ("tcp_abort_on_timeout", "netstat", "TcpExt", "TCPAbortOnTimeout", "TCP connections reset after too many retransmission timeouts"),
    ("tcp_backlog_drop", "netstat", "TcpExt", "TCPBacklogDrop", "TCP segments dropped because a socket's backlog was full"),
    ("tcp_rcvq_drop", "netstat", "TcpExt", "TCPRcvQDrop", "TCP segments dropped because a socket's receive queue was full"),
    ("tcp_ofo_drop", "netstat", "TcpExt", "TCPOFODrop", "Out-of-order TCP segments dropped for lack of receive buffer"),
    ("tcp_memory_pressures", "netstat", "TcpExt", "TCPMemoryPressures", "Times TCP entered memory pressure (tcp_mem)"),
    ("tcp_time_wait_overflow", "netstat", "TcpExt", "TCPTimeWaitOverflow", "TIME_WAIT sockets not created because tcp_max_tw_buckets was reached"),
    ("udp_in_datagrams", "snmp", "Udp", "InDatagrams", "UDP datagrams delivered to IPv4 sockets"),
    ("udp_out_datagrams", "snmp", "Udp", "OutDatagrams", "UDP datagrams sent over IPv4"),
    ("udp_no_ports", "snmp", "Udp", "NoPorts", "IPv4 UDP datagrams for a port nobody listens on"),
    ("udp_in_errors", "snmp", "Udp", "InErrors", "IPv4 UDP datagrams not delivered for an error other than no port (receive buffer errors included)"),
    ("udp_rcvbuf_errors", "snmp", "Udp", "RcvbufErrors", "IPv4 UDP datagrams dropped because the socket's receive buffer was full"),
    ("udp_sndbuf_errors", "snmp", "Udp", "SndbufErrors", "IPv4 UDP datagrams not sent for lack of send buffer"),
    ("udp_in_csum_errors", "snmp", "Udp", "InCsumErrors", "IPv4 UDP datagrams received with a bad checksum"),
    ("udp_mem_errors", "snmp", "Udp", "MemErrors", "IPv4 UDP datagrams dropped because UDP's memory limit (udp_mem) was reached"),
    ("udp6_in_datagrams", "snmp6", None, "Udp6InDatagrams", "UDP datagrams delivered to IPv6 sockets (dual-stack sockets' IPv4 traffic included)"),
    ("udp6_no_ports", "snmp6", None, "Udp6NoPorts", "IPv6 UDP datagrams for a port nobody listens on"),
    ("udp6_in_errors", "snmp6", None, "Udp6InErrors", "IPv6 UDP datagrams not delivered for an error other than no port (receive buffer errors included)"),
    ("udp6_rcvbuf_errors", "snmp6", None, "Udp6RcvbufErrors", "IPv6 UDP datagrams dropped because the socket's receive buffer was full"),
    ("udp6_sndbuf_errors", "snmp6", None, "Udp6SndbufErrors", "IPv6 UDP datagrams not sent for lack of send buffer"),
)


def _net_columns() -> tuple[Column, ...]:
    src = {"snmp": "/proc/net/snmp", "netstat": "/proc/net/netstat", "snmp6": "/proc/net/snmp6"}
    return tuple(
        C(col, "int64", "count", f"{what} ({src[f]} {sec + ' ' if sec else ''}{field}); NULL where the kernel does not report it.")
        for col, f, sec, field, what in NET_COUNTERS)

CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")

TABLES: dict[str, Table] = {}


def _add(t: Table) -> None:
    TABLES[t.name] = t


_add(Table(
    "snapshots",
    "snapshot",
    "One row per snapshot: when, where, what it cost to collect, and how complete its evidence is. "
    "A snapshot is committed when its row here is written; rows of other tables whose snapshot has no row here are ignored by the views.",
    COMMON + _snapshot_columns(),
))

_add(Table(
    "system",
    "snapshot",
    "Host-wide counters and gauges from /proc/stat, /proc/loadavg, /proc/meminfo, /proc/vmstat and /proc/pressure, "
    "and the TCP/UDP stack's counters from /proc/net/snmp, /proc/net/netstat and /proc/net/snmp6 (the recorder's network namespace).",
    COMMON + (
        C("boot_time", "timestamp", "UTC, s", "When the host booted (btime of /proc/stat); never NULL."),
        C("uptime_s", "float64", "s", "Seconds since boot (/proc/uptime); NULL if unreadable."),
        C("ncpus", "int32", "count", "Online CPUs counted in /proc/stat; never NULL."),
    ) + tuple(
        C(f"cpu_{m}", "float64", "s", f"CPU time spent in {m} mode, summed over all CPUs, cumulative since boot; NULL if the kernel does not report it.")
        for m in CPU_MODES
    ) + (
        C("ctxt", "int64", "count", "Context switches since boot; never NULL."),
        C("intr", "int64", "count", "Interrupts serviced since boot; never NULL."),
        C("forks", "int64", "count", "Processes and threads created since boot; never NULL."),
        C("procs_running", "int32", "count", "Tasks runnable right now (the run queue, including those running); never NULL."),
        C("procs_blocked", "int32", "count", "Tasks blocked waiting for I/O right now; never NULL."),
        C("load1", "float64", "load", "1-minute load average; never NULL."),
        C("load5", "float64", "load", "5-minute load average; never NULL."),
        C("load15", "float64", "load", "15-minute load average; never NULL."),
        C("tasks_total", "int32", "count", "Kernel scheduling entities (processes and threads) that exist; never NULL."),
        C("last_pid", "int32", "pid", "Most recently assigned pid; never NULL."),
        C("mem_total", "int64", "bytes", "Usable RAM (MemTotal); never NULL."),
        C("mem_free", "int64", "bytes", "Unused RAM (MemFree); never NULL."),
        C("mem_available", "int64", "bytes", "Estimate of memory available for new work without swapping (MemAvailable); NULL on kernels without it."),
        C("buffers", "int64", "bytes", "Block device buffers (Buffers); NULL if absent."),
        C("cached", "int64", "bytes", "Page cache (Cached); NULL if absent."),
        C("shmem", "int64", "bytes", "Shared memory and tmpfs (Shmem); NULL if absent."),
        C("slab_reclaimable", "int64", "bytes", "Reclaimable kernel slab (SReclaimable); NULL if absent."),
        C("slab_unreclaimable", "int64", "bytes", "Unreclaimable kernel slab (SUnreclaim); NULL if absent."),
        C("dirty", "int64", "bytes", "Memory waiting to be written back (Dirty); NULL if absent."),
        C("writeback", "int64", "bytes", "Memory being written back (Writeback); NULL if absent."),
        C("committed_as", "int64", "bytes", "Memory committed by all processes (Committed_AS); NULL if absent."),
        C("swap_total", "int64", "bytes", "Swap space (SwapTotal); never NULL (0 without swap)."),
        C("swap_free", "int64", "bytes", "Unused swap (SwapFree); never NULL."),
        C("swap_cached", "int64", "bytes", "Swapped-out memory also in RAM (SwapCached); NULL if absent."),
        C("pgfault", "int64", "count", "Page faults since boot (/proc/vmstat); NULL if absent."),
        C("pgmajfault", "int64", "count", "Major page faults since boot; NULL if absent."),
        C("pswpin", "int64", "pages", "Pages swapped in since boot; NULL if absent."),
        C("pswpout", "int64", "pages", "Pages swapped out since boot; NULL if absent."),
        C("oom_kill", "int64", "count", "Processes killed by the OOM killer since boot; NULL on kernels that do not count them."),
        C("file_handles", "int64", "count", "File handles allocated host-wide (first field of /proc/sys/fs/file-nr); NULL if unreadable."),
        C("file_max", "int64", "count", "Host-wide file handle limit (fs.file-max); NULL if unreadable."),
    ) + tuple(_psi_columns()) + _net_columns(),
))

_add(Table(
    "disks",
    "block device per snapshot",
    "Raw I/O counters of every block device in /proc/diskstats.",
    COMMON + (
        C("device", "string", "text", "Kernel device name (sda, nvme0n1p1, loop0, …); never NULL."),
        C("major", "int32", "number", "Device major number; never NULL."),
        C("minor", "int32", "number", "Device minor number; never NULL."),
        C("reads", "int64", "count", "Reads completed; never NULL."),
        C("reads_merged", "int64", "count", "Adjacent reads merged; never NULL."),
        C("read_bytes", "int64", "bytes", "Bytes read (sectors × 512); never NULL."),
        C("read_time_ms", "int64", "ms", "Time spent on reads; never NULL."),
        C("writes", "int64", "count", "Writes completed; never NULL."),
        C("writes_merged", "int64", "count", "Adjacent writes merged; never NULL."),
        C("write_bytes", "int64", "bytes", "Bytes written (sectors × 512); never NULL."),
        C("write_time_ms", "int64", "ms", "Time spent on writes; never NULL."),
        C("in_flight", "int64", "count", "I/Os in progress right now (a gauge); never NULL."),
        C("io_time_ms", "int64", "ms", "Time the device had I/O in flight (basis of %util); never NULL."),
        C("weighted_io_time_ms", "int64", "ms", "In-flight time weighted by queue depth; never NULL."),
    ),
))

_add(Table(
    "nics",
    "network interface per snapshot",
    "Raw counters of every network interface in /proc/net/dev (the recorder's network namespace).",
    COMMON + (
        C("interface", "string", "text", "Interface name (lo, eth0, …); never NULL."),
        C("rx_bytes", "int64", "bytes", "Bytes received; never NULL."),
        C("rx_packets", "int64", "count", "Packets received; never NULL."),
        C("rx_errors", "int64", "count", "Receive errors; never NULL."),
        C("rx_dropped", "int64", "count", "Received packets dropped; never NULL."),
        C("tx_bytes", "int64", "bytes", "Bytes sent; never NULL."),
        C("tx_packets", "int64", "count", "Packets sent; never NULL."),
        C("tx_errors", "int64", "count", "Send errors; never NULL."),
        C("tx_dropped", "int64", "count", "Outgoing packets dropped; never NULL."),
        C("multicast", "int64", "count", "Multicast packets received; never NULL."),
    ),
))

_add(Table(
    "filesystems",
    "mount per snapshot",
    "Every mount of the recorder's mount namespace (/proc/self/mountinfo) with its space and inodes from statvfs(3), "
    "what `df -a -B1` and `df -a -i` show. df without -a hides file systems of size 0 (proc, sysfs, cgroup, ...) and "
    "shows a device mounted at several points once: `size > 0` and one row per (major, minor) give df's list. "
    "Network and FUSE file systems are measured in a thread given a deadline, so a server that does not answer "
    "never stalls a snapshot (their numbers are NULL then, with the reason in `not_measured`).",
    COMMON + (
        C("mount_id", "int32", "number", "Mount id (first field of mountinfo; unique among the mounts of the snapshot); never NULL."),
        *_text_pair("mount_point", "Where it is mounted (df's Mounted on)", "never"),
        *_text_pair("source", "What is mounted (df's Filesystem: /dev/sda1, tmpfs, server:/export, ...)", "never"),
        C("fs_type", "string", "text", "File system type (ext4, xfs, tmpfs, nfs4, fuse.sshfs, ...; df -T); never NULL."),
        C("major", "int32", "number", "Major number of the file system's device (st_dev of its files: open_files.device is 'major,minor'); never NULL."),
        C("minor", "int32", "number", "Minor number of the file system's device; never NULL."),
        C("options", "string", "text", "Options of this mount (rw or ro, nosuid, relatime, ...); never NULL."),
        C("size", "int64", "bytes", "Total size: f_blocks x f_frsize (df's 1B-blocks); NULL when not measured."),
        C("used", "int64", "bytes", "Used: (f_blocks - f_bfree) x f_frsize (df's Used, blocks reserved for root count as free); NULL when not measured."),
        C("avail", "int64", "bytes", "Available to unprivileged users: f_bavail x f_frsize (df's Avail; root may write into the reserved blocks beyond it); NULL when not measured."),
        C("inodes_total", "int64", "count", "Inodes: f_files (df -i Inodes; 0 where the file system does not count them); NULL when not measured."),
        C("inodes_used", "int64", "count", "Inodes used: f_files - f_ffree (df -i IUsed); NULL when not measured."),
        C("inodes_free", "int64", "count", "Inodes free: f_ffree (df -i IFree); NULL when not measured."),
        C("not_measured", "string", "text", "Why size, used, avail and inodes are NULL (a mount hidden under a later one on the same point, an automount point, a network file system that did not answer in time, an error); NULL when measured."),
    ),
))

_add(Table(
    "processes",
    "process per snapshot",
    "Every process (thread group) in /proc, with what ps, top and atop show of it. " + IDENTITY_NOTE,
    COMMON + (
        C("boot_id", "string", "uuid", "Kernel boot id, repeated here so process identity needs no join; NULL if unreadable."),
        C("pid", "int32", "pid", "Process id (thread group id); never NULL."),
        C("ppid", "int32", "pid", "Parent process id (0 for the roots); never NULL."),
        C("pgid", "int32", "pid", "Process group id; never NULL."),
        C("sid", "int32", "pid", "Session id; never NULL."),
        C("start_time", "timestamp", "UTC, 10 ms", "When the process started (boot time + starttime ticks); never NULL."),
        *_text_pair("name", "Command name as in /proc/PID/stat (comm: what ps -o comm shows; at most 15 bytes except for some kernel threads)", "never"),
        *_text_pair("exe", "Path of the executable (readlink of /proc/PID/exe, ' (deleted)' kept)", "for kernel threads and zombies, or when access is denied (see `denied`)"),
        *_text_pair("cmdline", "Command line, arguments joined by single spaces as ps -o args shows them; empty for kernel threads and zombies", "when access is denied"),
        C("state", "string", "code", "Scheduler state as ps STAT's first letter: R running, S sleeping, D disk sleep, Z zombie, T stopped, t traced, I idle, X dead; never NULL."),
        C("uid", "int32", "uid", "Effective user id; never NULL."),
        C("user", "string", "text", "Name of the effective user, resolved on the recorded host (the number as text when it has no name); never NULL."),
        C("ruid", "int32", "uid", "Real user id; never NULL."),
        C("gid", "int32", "gid", "Effective group id; never NULL."),
        C("nice", "int32", "nice", "Nice value, -20..19; never NULL."),
        C("priority", "int32", "prio", "Kernel priority as /proc/PID/stat reports it (top's PR); NULL only where psutil read the processes (no C module)."),
        C("processor", "int32", "cpu", "CPU the process last ran on; never NULL."),
        C("num_threads", "int32", "count", "Threads in the process (ps nlwp); never NULL."),
        C("utime", "float64", "s", "User CPU time, cumulative, of the live and reaped threads of the process; never NULL."),
        C("stime", "float64", "s", "System CPU time, cumulative; never NULL."),
        C("rss", "int64", "bytes", "Resident set size (VmRSS, what ps RSS and top RES show, × 1024); never NULL (0 for kernel threads)."),
        C("vms", "int64", "bytes", "Virtual memory size (ps VSZ × 1024); never NULL."),
        C("shared", "int64", "bytes", "Resident shared memory: file-backed plus shmem (top SHR); NULL when the kernel does not report it."),
        C("swap", "int64", "bytes", "Memory swapped out (VmSwap); NULL for kernel threads, when not reported, and where psutil read the processes (no C module)."),
        C("minflt", "int64", "count", "Minor page faults, cumulative; NULL only where psutil read the processes (no C module)."),
        C("majflt", "int64", "count", "Major page faults, cumulative; NULL only where psutil read the processes (no C module)."),
        C("rchar", "int64", "bytes", "Bytes read via read()-like calls, cumulative (/proc/PID/io); NULL when access is denied."),
        C("wchar", "int64", "bytes", "Bytes written via write()-like calls, cumulative; NULL when access is denied."),
        C("syscr", "int64", "count", "Read syscalls, cumulative; NULL when access is denied."),
        C("syscw", "int64", "count", "Write syscalls, cumulative; NULL when access is denied."),
        C("read_bytes", "int64", "bytes", "Bytes fetched from storage, cumulative; NULL when access is denied."),
        C("write_bytes", "int64", "bytes", "Bytes sent to storage, cumulative; NULL when access is denied."),
        C("cancelled_write_bytes", "int64", "bytes", "Written bytes that were truncated away before reaching storage; NULL when access is denied, and where psutil read the processes (no C module)."),
        C("ctxsw_voluntary", "int64", "count", "Voluntary context switches (the process waited), cumulative; NULL when not reported."),
        C("ctxsw_involuntary", "int64", "count", "Involuntary context switches (the process was preempted), cumulative; NULL when not reported."),
        C("num_fds", "int32", "count", "Open file descriptors (entries of /proc/PID/fd); NULL when access is denied."),
        C("fd_limit", "int64", "count", "Soft limit on open files (RLIMIT_NOFILE); NULL when unlimited or unreadable."),
        C("fd_limit_hard", "int64", "count", "Hard limit on open files; NULL when unlimited or unreadable."),
        C("cgroup", "string", "text", "Control groups the process is in below the root, formatted as ps -o cgroup does ('/' where ps prints '-': in the root group only); NULL when unreadable, and where psutil read the processes (no C module)."),
        C("tty", "string", "text", "Controlling terminal as ps TTY shows it (pts/0, tty1, …); NULL when the process has none."),
        C("denied", "string", "text", "Comma-separated list of the sources the kernel refused to the recorder (exe, cmdline, io, fd, limits, cgroup); NULL when nothing was denied."),
    ),
))

_add(Table(
    "threads",
    "thread per snapshot",
    "Every thread of every process (/proc/PID/task/TID), what ps -eL and top -H show. The thread with tid = pid is the main thread.",
    COMMON + (
        C("boot_id", "string", "uuid", "Kernel boot id; NULL if unreadable."),
        C("pid", "int32", "pid", "Process (thread group) the thread belongs to; never NULL."),
        C("tid", "int32", "tid", "Thread id; never NULL."),
        C("start_time", "timestamp", "UTC, 10 ms", "When the thread started; never NULL."),
        *_text_pair("name", "Thread name (comm of the thread, at most 15 bytes except for some kernel threads)", "never"),
        C("state", "string", "code", "Scheduler state letter, as in processes.state; never NULL."),
        C("nice", "int32", "nice", "Nice value; never NULL."),
        C("priority", "int32", "prio", "Kernel priority; NULL only where psutil read the threads (no C module)."),
        C("processor", "int32", "cpu", "CPU the thread last ran on; never NULL."),
        C("utime", "float64", "s", "User CPU time of this thread, cumulative; never NULL."),
        C("stime", "float64", "s", "System CPU time of this thread, cumulative; never NULL."),
        C("minflt", "int64", "count", "Minor page faults of this thread, cumulative; NULL only where psutil read the threads (no C module)."),
        C("majflt", "int64", "count", "Major page faults of this thread, cumulative; NULL only where psutil read the threads (no C module)."),
        C("ctxsw_voluntary", "int64", "count", "Voluntary context switches of the thread, cumulative: the leader's from /proc/PID/status, the others' from taskstats (netlink; as root) or, where it does not answer, their task's status file (the same counter); NULL when not reported."),
        C("ctxsw_involuntary", "int64", "count", "Involuntary context switches of the thread, cumulative, read as ctxsw_voluntary is; NULL when not reported."),
    ),
))

_add(Table(
    "open_files",
    "descriptor per snapshot, as lsof lists it",
    "Every open descriptor of every process as `lsof -n -P -K i` lists it: the working directory (cwd), root "
    "directory (rtd), executable (txt), each memory-mapped file (mem, or DEL when deleted), and every numbered fd. "
    "The text of `fd`+`mode`, `type`, `device`, `inode`/`node` and `name` is what lsof prints. " + IDENTITY_NOTE,
    COMMON + (
        C("boot_id", "string", "uuid", "Kernel boot id; NULL if unreadable."),
        C("pid", "int32", "pid", "Process holding the descriptor; never NULL."),
        C("start_time", "timestamp", "UTC, 10 ms", "Start time of that process (joins with processes); never NULL."),
        C("fd", "string", "text", "lsof's FD without the mode letter: cwd, rtd, txt, mem, DEL (a deleted mapped file) or the descriptor number; never NULL."),
        C("fd_num", "int32", "fd", "The descriptor number; NULL for cwd, rtd, txt, mem and DEL."),
        C("mode", "string", "code", "Access mode lsof appends to FD: r read, w write, u both; NULL for cwd/rtd/txt/mem and where it could not be read. Without the C module (snapshots.reader psutil), a regular file's comes from psutil, or the link's permission bits where psutil does not list it."),
        C("type", "string", "code", "lsof's TYPE: REG, DIR, CHR, BLK, FIFO, LINK, SOCK, unix, IPv4, IPv6, netlink, raw, raw6, pack, sock, a_inode, unknown (unknown when access was denied); never NULL."),
        C("device", "string", "text", "lsof's DEVICE: major,minor for files; the socket inode for IPv4/IPv6 (as lsof shows it when kernel addresses are hidden); the kernel address for unix; NULL where lsof shows none. Without the C module (snapshots.reader psutil), a mapped file's (mem, DEL) is that of a stat of /proc/PID/map_files/<range>, NULL where that fails (not root)."),
        C("size", "int64", "bytes", "File size (REG, DIR, a_inode, mapped files); NULL where lsof shows an offset instead or nothing, and for a mapped file whose /proc/PID/map_files/<range> cannot be stat'ed."),
        C("pos", "int64", "bytes", "File offset of the descriptor (fdinfo pos): what lsof shows as 0tN; NULL for cwd/rtd/txt/mem and where not read. Without the C module (snapshots.reader psutil): NULL for devices (CHR, BLK) and for regular files psutil does not list."),
        C("inode", "int64", "number", "Inode number (the socket inode for sockets); NULL when unknown (denied). Without the C module (snapshots.reader psutil), a mapped file's is NULL where its /proc/PID/map_files/<range> cannot be stat'ed (psutil gives none)."),
        C("proto", "string", "code", "For sockets: TCP, UDP, UDPLITE, RAW (what lsof shows in NODE for IPv4/IPv6); NULL for other rows. Without the C module (snapshots.reader psutil) only TCP and UDP sockets of the recorder's network namespace are known (psutil reads no other): the others are 'sock' rows named by their protocol."),
        *_text_pair("name", "lsof's NAME: the path (with ' (deleted)' for deleted files), pipe, [eventpoll], 127.0.0.1:8080->127.0.0.1:5000 (ESTABLISHED), /run/x.sock type=STREAM (LISTEN), or '/proc/PID/fd/N (readlink: Permission denied)'", "never"),
        C("deleted", "bool", "flag", "True when the file was deleted while open (or mapped); never NULL. Without the C module (snapshots.reader psutil, which drops the kernel's ' (deleted)' of a mapped file), a mapped file is deleted when its path names no file now, or another file than its mapping (where /proc/PID/map_files/<range> can be stat'ed)."),
        C("mount_point", "string", "path", "Mount point of the file system holding the file, in the recorder's mount table: found by the file's device (for CHR and BLK, whose device is the one they are, by the path's deepest mount point); what `lsof MOUNTPOINT` selects on. NULL for sockets, pipes, anonymous inodes, a device mounted nowhere the recorder sees, a mount point that is not UTF-8, and recordings made before it was recorded."),
    ),
))

_add(Table(
    "sockets",
    "socket and owner per snapshot, as ss -tunapx lists it",
    "Every TCP, UDP, raw, unix, netlink and packet socket of every network namespace that has a process, from "
    "/proc/PID/net/*. A socket shared by several processes (or fds) has one row per owner; a socket with no owner "
    "(TIME_WAIT, orphans) has one row with a NULL pid. Without the C module (snapshots.reader psutil) the TCP and "
    "UDP sockets are psutil's (net_connections), of the recorder's network namespace only, and there are no "
    "UDP-Lite and raw ones; what psutil does not give is NULL, as the columns say.",
    COMMON + (
        C("boot_id", "string", "uuid", "Kernel boot id; NULL if unreadable."),
        C("pid", "int32", "pid", "Owning process; NULL when no process holds the socket (TIME_WAIT, orphaned, or its owner was not readable)."),
        C("fd", "int32", "fd", "Descriptor of the owning process; NULL when there is no owner."),
        C("start_time", "timestamp", "UTC, 10 ms", "Start time of the owning process; NULL when there is no owner."),
        C("inode", "int64", "number", "Socket inode (0 for TIME_WAIT and other sockets without one); NULL only without the C module (snapshots.reader psutil) for a TCP or UDP socket with no owner read (psutil gives no inode: it is the owning descriptor's)."),
        C("netns", "int64", "number", "Inode of the network namespace the socket lives in; NULL if unreadable."),
        C("family", "string", "code", "lsof's TYPE for the socket: IPv4, IPv6, unix, netlink, pack; never NULL."),
        C("proto", "string", "code", "TCP, UDP, UDPLITE or RAW for IPv4/IPv6; the netlink protocol (ROUTE, …); NULL for unix and packet."),
        C("sock_type", "string", "code", "STREAM, DGRAM, SEQPACKET or RAW; NULL where the kernel does not say."),
        C("local_addr", "string", "address", "Local address (0.0.0.0 or :: when bound to all); NULL for unix, netlink and packet; without the C module (snapshots.reader psutil), the unspecified address where the local port is 0 (psutil gives no endpoint then)."),
        C("local_port", "int32", "port", "Local port; NULL for unix, netlink and packet."),
        C("remote_addr", "string", "address", "Remote address (0.0.0.0 or :: when unconnected); NULL for unix, netlink and packet; without the C module (snapshots.reader psutil), which gives no endpoint with port 0, the unspecified address where the remote port is 0."),
        C("remote_port", "int32", "port", "Remote port (0 when unconnected); NULL for unix, netlink and packet."),
        C("state", "string", "code", "lsof's state: ESTABLISHED, LISTEN, TIME_WAIT, CLOSE_WAIT, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, LAST_ACK, CLOSING, CLOSE; UNCONN or ESTABLISHED for UDP and raw (as ss); CONNECTED, UNCONNECTED, LISTEN, CONNECTING, DISCONNECTING for unix; NULL for netlink and packet. Without the C module (snapshots.reader psutil, which gives no UDP state), a UDP socket is ESTABLISHED when it has a remote endpoint, UNCONN otherwise."),
        C("rx_queue", "int64", "bytes", "Receive queue; for a TCP listener, the connections waiting to be accepted (ss Recv-Q); NULL for unix, netlink and packet, and for TCP and UDP without the C module (snapshots.reader psutil: it gives no queues)."),
        C("tx_queue", "int64", "bytes", "Send queue (ss Send-Q); 0 for a TCP listener, whose backlog /proc/net does not show (ss Send-Q there is the backlog); NULL for unix, netlink and packet, and for TCP and UDP without the C module (snapshots.reader psutil: it gives no queues)."),
        C("uid", "int32", "uid", "User that created the socket; NULL for unix and packet, and for TCP and UDP without the C module (snapshots.reader psutil: it gives no uid)."),
        *_text_pair("unix_path", "Path a unix socket is bound to, '@name' for the abstract namespace", "for unbound unix sockets and other families"),
    ),
))


_add(Table(
    "kernel_events",
    "kernel log record",
    "Every record of the kernel log (/dev/kmsg) that `procsnap record` read, written with the next snapshot "
    "(`snapshot_id`, `ts` are that snapshot's; `time` is the record's own), in the order of `seq`, with no duplicates "
    "across restarts of a recording. Records that were already in the kernel's ring buffer when a run started are kept "
    "too (`backlog`). Messages the responders look for first are parsed into `kind` and the columns after it "
    "(docs/schema.md lists each kind's fields); every other record has `kind` NULL and its text. A parsed record names "
    "its process by `pid` and `comm`: the process is usually gone by then, so it joins `processes` on "
    "(`boot_id`, `pid`) with `processes.ts` before `time`. " + IDENTITY_NOTE,
    COMMON + (
        C("boot_id", "string", "uuid", "Kernel boot id of the boot that wrote the record; NULL if unreadable."),
        C("seq", "int64", "number", "Sequence number of the record in its boot (/dev/kmsg's SEQ: never reused within a boot); never NULL."),
        C("kernel_ts_us", "int64", "µs since boot", "The kernel's timestamp (its printk clock, which like CLOCK_MONOTONIC does not count suspend); never NULL."),
        C("time", "timestamp", "UTC, µs", "When the kernel wrote the record: kernel_ts_us plus CLOCK_REALTIME - CLOCK_MONOTONIC taken when the recorder read it (off by the drift between the printk clock and CLOCK_MONOTONIC, and by any step of the wall clock since: seconds at most in practice); never NULL."),
        C("priority", "int32", "level", "Syslog level, PRI & 7 (0 emerg .. 7 debug); never NULL."),
        C("level", "string", "code", "The level's name: emerg, alert, crit, err, warning, notice, info, debug; never NULL."),
        C("facility", "int32", "number", "Syslog facility, PRI >> 3: 0 for the kernel's own records, 1 (user) and others for lines user space wrote to /dev/kmsg (those are never parsed); never NULL."),
        C("backlog", "bool", "flag", "True when the record was already in the ring buffer when the recorder started reading (written before this run of `procsnap record`, possibly before the recording began); never NULL."),
        C("text", "string", "text", "The message as /dev/kmsg gives it (every byte outside printable ASCII, and the backslash, written \\xNN by the kernel), with credentials redacted as in processes.cmdline unless recorded with --no-redact; never NULL."),
        C("subsystem", "string", "text", "The record's SUBSYSTEM= (pci, net, block, ...), for a device's message; NULL when it has none."),
        C("device", "string", "text", "The record's DEVICE= (b8:0 a block device, n2 a network interface, +pci:0000:00:01.0, ...); NULL when it has none."),
        C("kind", "string", "code", "What the record reports, for the kernel's (facility 0) messages: oom_invoked, oom_memcg (a memory cgroup's usage and limit, printed before its oom_context), oom_context, oom_kill, segfault, trap, hung_task, soft_lockup, hard_lockup, syn_flood, conntrack_full, fs_error, fs_readonly, io_error; NULL for every other record."),
        C("pid", "int32", "pid", "The process the record concerns: the victim (oom_kill, oom_context), the faulting process (segfault, trap), the blocked or stuck task (hung_task, soft_lockup: a thread id, equal to the pid for a main thread); NULL for other kinds."),
        C("comm", "string", "text", "That process's command name (comm) as the kernel printed it; NULL when the kind names none (and for oom_invoked: the task that asked for memory, not the victim, whose pid is NULL)."),
        C("start_time", "timestamp", "UTC, 10 ms", "Start time of that process (hung_task, soft_lockup, segfault, trap), looked up as the recorder read the record: from /proc when the process was still there with the same comm, else from the process events (its fork, exec or exit); with boot_id and pid it is the identity used by `processes`; NULL when neither knew it (join on pid and time then) and for other kinds."),
        C("uid", "int32", "uid", "User id of the victim (oom_kill, oom_context); NULL for other kinds and older kernels."),
        C("cgroup", "string", "path", "oom_kill and oom_context: the memory cgroup that ran out (oom_memcg=); NULL for a system-wide OOM (detail 'global_oom') and other kinds."),
        C("task_cgroup", "string", "path", "oom_kill and oom_context: the victim's memory cgroup (task_memcg=); NULL for other kinds and kernels that do not print it."),
        C("oom_constraint", "string", "code", "oom_kill and oom_context: what limited the allocation: CONSTRAINT_NONE (the whole host), CONSTRAINT_MEMCG, CONSTRAINT_CPUSET, CONSTRAINT_MEMORY_POLICY; NULL for other kinds, and for an oom_kill whose oom_context record was not read."),
        C("memory_usage", "int64", "bytes", "oom_memcg, and the oom_context and oom_kill of a memory cgroup's OOM (CONSTRAINT_MEMCG) that follow it: the cgroup's memory usage when the OOM killer ran, as the kernel printed it; NULL for other kinds, for a system-wide OOM, and when the oom_memcg record was not read."),
        C("memory_limit", "int64", "bytes", "Likewise: the memory cgroup's limit (memory.limit_in_bytes in cgroup v1, memory.max in v2) when the OOM killer ran; 9223372036854767616 (the kernel's 'max') when the cgroup had none and another limit (memory+swap) was hit; NULL as memory_usage is."),
        C("failcnt", "int64", "count", "oom_memcg: how many times the cgroup's usage hit its limit so far; NULL for other kinds."),
        C("anon_rss", "int64", "bytes", "oom_kill: the victim's anonymous resident memory when killed; NULL for other kinds."),
        C("file_rss", "int64", "bytes", "oom_kill: the victim's file-backed resident memory; NULL for other kinds."),
        C("shmem_rss", "int64", "bytes", "oom_kill: the victim's resident shared memory; NULL for other kinds and kernels that do not print it."),
        C("total_vm", "int64", "bytes", "oom_kill: the victim's virtual memory size; NULL for other kinds."),
        C("trap", "string", "text", "segfault: 'segfault'; trap: the trap the kernel names (general protection fault, divide error, invalid opcode, int3, ...); NULL for other kinds."),
        C("address", "string", "hex", "segfault: the address whose access faulted, in hex as the kernel printed it; NULL for other kinds."),
        C("ip", "string", "hex", "segfault and trap: the instruction pointer, in hex; NULL for other kinds."),
        C("sp", "string", "hex", "segfault and trap: the stack pointer, in hex; NULL for other kinds."),
        C("error_code", "int64", "bits", "segfault and trap: the hardware error code (for a page fault on x86: 1 protection, 2 write, 4 user, 16 instruction fetch); NULL for other kinds."),
        C("library", "string", "text", "segfault and trap: the file mapped at the instruction pointer (the program or a library); NULL when the kernel printed none (an anonymous mapping) and for other kinds."),
        C("seconds", "int64", "s", "hung_task: seconds the task had been blocked; soft_lockup: seconds the CPU was stuck; NULL for other kinds."),
        C("cpu", "int32", "cpu", "soft_lockup and hard_lockup: the CPU; NULL for other kinds."),
        C("local_addr", "string", "address", "syn_flood: the listener's address (kernels since 5.8 print it); NULL otherwise."),
        C("port", "int32", "port", "syn_flood: the listener's port; NULL for other kinds."),
        C("fs_type", "string", "code", "fs_error and fs_readonly: EXT4 (EXT2, EXT3), XFS or BTRFS; NULL for other kinds and for a journal abort (jbd2's 'Aborting journal on device', which ext3, ext4 and ocfs2 share)."),
        C("block_device", "string", "text", "fs_error, fs_readonly and io_error: the device the kernel names (sda1, dm-0, nvme0n1); NULL for other kinds."),
        C("sector", "int64", "number", "io_error: the sector of the failed request (the logical block for 'Buffer I/O error'); NULL for other kinds."),
        C("detail", "string", "text", "io_error: the block layer's status (I/O, critical medium, timeout, ...); syn_flood: 'Sending cookies' or 'Dropping request'; oom_kill and oom_context: 'global_oom' for a system-wide OOM; NULL otherwise."),
    ),
))


_add(Table(
    "process_events",
    "process event",
    "Every process start (fork), program start (exec), exit, and change of name (comm), user, group, session, "
    "tracer or core dump that the kernel's process connector reported while `procsnap record` ran, written with the "
    "next snapshot (`snapshot_id`, `ts` are that snapshot's; `time` is the event's own). `pid` is the process (thread "
    "group), `tid` the thread. What a later snapshot could no longer see is read at the event: at exec the new "
    "program's command line (redacted as processes.cmdline), exe, cwd, user, parent and cgroup; at exit the kernel's "
    "own accounting of the task (taskstats: CPU, peak memory, I/O, delays). Threads' events are not stored one by one "
    "unless recorded with --thread-events: a row of kind 'threads' per process and snapshot counts the threads it started. Rows of a "
    "process share its identity with `processes`, `open_files` and `sockets`. " + IDENTITY_NOTE,
    COMMON + (
        C("boot_id", "string", "uuid", "Kernel boot id of the boot the event happened in; NULL if unreadable."),
        C("time", "timestamp", "UTC, µs", "When the kernel reported the event: its CLOCK_MONOTONIC timestamp plus CLOCK_REALTIME - CLOCK_MONOTONIC taken when the recorder read it (off by any step of the wall clock since); NULL for kind 'threads' (a count over the interval)."),
        C("kernel_ts_ns", "int64", "ns since boot", "The event's kernel timestamp (CLOCK_MONOTONIC, not counting suspend); NULL for kind 'threads'."),
        C("cpu", "int32", "cpu", "CPU the event was reported on; NULL for kind 'threads'."),
        C("kind", "string", "code", "fork (a new process: pid is the child, ppid the parent), exec (pid started a new program), exit (the process ended: its main thread exited), comm (its name changed: prctl or a write to /proc/PID/comm), uid or gid (its real or effective id changed), sid (it started a session: setsid), ptrace (a tracer attached or detached: tracer_pid), coredump (it dumps core), threads (how many threads one process started since the previous snapshot: their rows, and their exits and renames, are not stored); with --thread-events also thread_fork, thread_exit and the other kinds of a thread that is not the main one; never NULL."),
        C("pid", "int32", "pid", "The process (thread group id); never NULL."),
        C("tid", "int32", "tid", "The thread that caused the event (equal to pid for the main thread); NULL for kind 'threads'."),
        C("ppid", "int32", "pid", "Parent process: from the event for fork and exit (kernels since 4.18 for exit) and coredump, from /proc/PID/stat at exec; NULL for other kinds and when unreadable."),
        C("start_time", "timestamp", "UTC, 10 ms", "Start time of the process as `processes` has it (boot time + /proc/PID/stat starttime), read at its fork or exec (or at its exit when neither was seen): with boot_id and pid the identity used by `processes`, `open_files` and `sockets`; NULL when the process was gone before it could be read (`unread` says so)."),
        *_text_pair("name", "Command name (comm): the new name for comm, the name at exec and exit (taskstats' at exit)", "when unread (see `unread`) and for kinds other than comm, exec and exit"),
        *_text_pair("cmdline", "exec: the new program's command line, arguments joined by single spaces, credentials redacted exactly as in processes.cmdline unless recorded with --no-redact", "for other kinds and when unread (a process that exited, or exec'd again, before it was read: see `unread`)"),
        *_text_pair("exe", "exec: the program's path (readlink of /proc/PID/exe)", "for other kinds and when unread"),
        C("cwd", "string", "path", "exec: the working directory (readlink of /proc/PID/cwd); NULL for other kinds and when unread."),
        C("uid", "int32", "uid", "exec: the effective user id; uid: the new effective id; exit: the real user id (taskstats); NULL for other kinds and when unread."),
        C("ruid", "int32", "uid", "uid: the new real user id; NULL for other kinds."),
        C("gid", "int32", "gid", "exec: the effective group id; gid: the new effective id; exit: the real group id (taskstats); NULL for other kinds and when unread."),
        C("rgid", "int32", "gid", "gid: the new real group id; NULL for other kinds."),
        C("cgroup", "string", "text", "exec: the control groups, formatted as processes.cgroup; NULL for other kinds and when unread."),
        C("unread", "string", "text", "What could not be read for this event and why: 'proc: gone' (the process had exited and been reaped before /proc/PID was read), 'proc: exited' (it had exited but was not yet reaped: its name, user, parent and start time were read, its command line, exe, cwd and cgroup were gone), 'proc: exec'd again' (a later exec of the same process was already reported: what /proc shows is that program's), 'proc: denied' and the files it could not read (exe, cwd, cmdline: another user's process without root), 'taskstats: off' (`snapshots.exit_accounting` says why, e.g. 'needs the C module'), 'taskstats: no record' (its exit record was lost or never sent); NULL when everything was read."),
        C("exit_status", "int32", "code", "exit: the status the process exited with (0-255); NULL when a signal killed it and for other kinds."),
        C("signal", "int32", "signal", "exit: the signal that killed the process (9 for SIGKILL); coredump: NULL; NULL when it exited by itself and for other kinds."),
        C("core_dumped", "bool", "flag", "exit: True when the killing signal dumped core; NULL for other kinds."),
        C("tracer_pid", "int32", "pid", "ptrace: the tracer process (0 when it detached); NULL for other kinds."),
        C("threads", "int64", "count", "threads: threads the process started since the previous snapshot; NULL for other kinds."),
        C("utime", "float64", "s", "exit: user CPU time of the exited task (taskstats ac_utime); NULL for other kinds and without taskstats (see `unread`)."),
        C("stime", "float64", "s", "exit: system CPU time of the exited task; NULL as utime."),
        C("elapsed", "float64", "s", "exit: how long the task lived (taskstats ac_etime); NULL as utime."),
        C("max_rss", "int64", "bytes", "exit: the task's peak resident memory (taskstats hiwater_rss × 1024); NULL as utime."),
        C("rchar", "int64", "bytes", "exit: bytes read via read()-like calls; NULL as utime."),
        C("wchar", "int64", "bytes", "exit: bytes written via write()-like calls; NULL as utime."),
        C("read_bytes", "int64", "bytes", "exit: bytes fetched from storage; NULL as utime."),
        C("write_bytes", "int64", "bytes", "exit: bytes sent to storage; NULL as utime."),
        C("minflt", "int64", "count", "exit: minor page faults; NULL as utime."),
        C("majflt", "int64", "count", "exit: major page faults; NULL as utime."),
        C("ctxsw_voluntary", "int64", "count", "exit: voluntary context switches; NULL as utime."),
        C("ctxsw_involuntary", "int64", "count", "exit: involuntary context switches; NULL as utime."),
        C("cpu_delay", "float64", "s", "exit: time the task waited for a CPU (delay accounting: 0 unless the kernel's delayacct is on); NULL as utime."),
        C("blkio_delay", "float64", "s", "exit: time the task waited for block I/O (delay accounting); NULL as utime."),
        C("swapin_delay", "float64", "s", "exit: time the task waited for swap-in (delay accounting); NULL as utime."),
    ),
))


_add(Table(
    "triggers",
    "trigger firing",
    "Every firing of a trigger the always-on recorder watches (docs/operations.md lists them with their "
    "defaults): a PSI pressure trigger, a host counter over its threshold, a kernel report (OOM kill, hung task, "
    "lockup), a file system nearly full, a process near its descriptor limit. Written with the next snapshot "
    "(`snapshot_id`, `ts` are that snapshot's; `time` is the firing's own). A trigger that keeps firing gets one "
    "row every 30 s at most, `firings` counting the ones in between and `value` their highest.",
    COMMON + (
        C("time", "timestamp", "UTC, µs", "When the condition was seen; never NULL."),
        C("trigger", "string", "code", "psi_cpu, psi_memory, psi_io, mem_available, load, swap_in, listen_drops, tcp_retrans, kernel_report, fs_full or fd_limit; never NULL."),
        C("value", "float64", "per trigger", "The value seen (for PSI triggers the resource's avg10, in %; mem_available in % of MemTotal, under the threshold; the others over it); NULL when it could not be read."),
        C("threshold", "float64", "per trigger", "The threshold it was held to; never NULL."),
        C("detail", "string", "text", "What the value is of: the resource, the file system, the process (name and pid), the kernel report; never NULL."),
        C("firings", "int64", "count", "Firings of this trigger this row stands for (1, or more when it kept firing); never NULL."),
        C("suppressed", "bool", "flag", "True when the firing did not start or extend the incident preset because incident cadence had already taken its share of the last hour (`max_share`); never NULL."),
    ),
))


_add(Table(
    "thread_samples",
    "thread sample",
    "Where threads wait: while the incident preset runs (and always with `record --thread-samples`), every 0.5 s, "
    "one row per thread found in a sampled state (R running or runnable and D uninterruptible by default; S too "
    "with `--thread-samples=RDS`), with what it was doing: wchan, the current system call and its first argument "
    "(/proc/PID/task/TID/syscall), and for D the kernel stack where the kernel lets root read it. Written with the "
    "next snapshot (`snapshot_id`, `ts` are that snapshot's; `time` is the sample's). Nothing of a thread's memory "
    "is read and no command line is stored: rows join `threads` on (boot_id, pid, tid, start_time) and `processes` "
    "on (boot_id, pid). The recorder's own threads are left out.",
    COMMON + (
        C("boot_id", "string", "uuid", "Kernel boot id; NULL if unreadable."),
        C("time", "timestamp", "UTC, µs", "When the sample (the pass over every thread) started; never NULL."),
        C("pid", "int32", "pid", "The thread's process; never NULL."),
        C("tid", "int32", "tid", "The thread; never NULL."),
        C("start_time", "timestamp", "UTC, 10 ms", "The thread's start time (its stat's starttime), as threads.start_time; NULL if unparsable."),
        C("state", "string", "code", "R (running or runnable), D (uninterruptible: disk, NFS, a kernel lock), S (sleeping: only when asked); never NULL."),
        C("name", "string", "text", "The thread's comm; never NULL."),
        C("wchan", "string", "text", "The kernel function it waits in (/proc/PID/task/TID/wchan); NULL for a running thread and where the kernel shows '0' (kernels hide wchan without kallsyms access)."),
        C("syscall_nr", "int32", "number", "The system call it is in (the syscall file's first field); -1 when blocked outside a system call (a page fault); NULL when running in user space or unreadable (`activity` says which)."),
        C("syscall", "string", "text", "That system call's name from the kernel's table for the recording host's architecture (asm/unistd_64.h of its kernel headers); NULL where the host has no table (syscall_nr still says) and when syscall_nr is."),
        C("arg0", "string", "hex", "The system call's first argument as the kernel prints it (a descriptor number, a flag, an address: never what it points to); NULL when not in a system call."),
        C("activity", "string", "code", "'running' (on a CPU in user space: no system call), 'not in a system call' (syscall_nr -1), 'kernel thread' (no system call to show: the kernel prints 0 for them), 'denied' (the syscall file could not be read: another user's thread without root, or gone); NULL when in a system call."),
        C("stack", "string", "text", "D only: the kernel stack's function names, innermost first, joined with ';'; NULL for other states and when unreadable (`stack_unread`)."),
        C("stack_unread", "string", "text", "D only: why the stack is NULL: 'denied' (the kernel refuses /proc/PID/task/TID/stack: not root, or a lockdown); NULL otherwise."),
    ),
))


def table(name: str) -> Table:
    return TABLES[name]
