"""The kernel's incident reports: the kernel log followed while `procsnap record` runs, one
``kernel_events`` row per record, with parsed fields for what responders look for first.

A reader thread waits on /dev/kmsg (poll: no wake-up while the kernel is quiet) and keeps the
records in a bounded buffer (:data:`CAPACITY` records, and an eighth more for the kernel's
incident reports once it is full: an OOM kill's task dump must not crowd out the kill itself);
each snapshot takes them and writes them with its own files, under the same commit rule as every
other table (a snapshot dropped on a full disk gives them back to the next one). A record that
does not fit is counted in ``snapshots.events_dropped``; records the kernel overwrote before
they were read, in ``snapshots.kernel_events_lost``. Never a stall: the thread only reads and
appends.

Resuming: at the start the recording's newest ``kernel_events`` row of this host and boot gives
the last sequence number stored; the log is read from its oldest record and what is stored is
skipped (/dev/kmsg cannot seek to a sequence number). A new boot starts at the oldest record.
Records already in the ring buffer when a run starts are kept (``backlog`` true): what led to a
restart is the evidence most wanted.

The message formats parsed are the kernel's own (mm/oom_kill.c, arch/x86/mm/fault.c,
arch/x86/kernel/traps.c, kernel/hung_task.c, kernel/watchdog.c and watchdog_perf.c,
net/ipv4/tcp_input.c, net/netfilter/nf_conntrack_core.c, fs/ext4/super.c, fs/xfs, fs/btrfs,
block/blk-core.c, fs/buffer.c); a record none of them matches is stored with kind NULL.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading

from recorder.collect.events import Follower, Taken
from recorder.source.kmsg import LEVELS, KmsgReader, Record, Unavailable, unescape

TYPE_CHECKING = False
if TYPE_CHECKING:
    from recorder.store.folder import Store

UTC = dt.timezone.utc
CAPACITY = 8192  # records held between two snapshots; more are counted as dropped
TABLE = "kernel_events"


def _text(b: bytes) -> str:
    """A name from a record (the kernel's \\xNN escapes undone) as text, invalid UTF-8 as \\xNN."""
    return unescape(b).decode("utf-8", "backslashreplace")


# ---------------------------------------------------------------------------
# Parsers: (kind, compiled pattern, what the groups become). Anchored where the kernel's format
# is, and tolerant of the prefixes some kernels add (pr_fmt "watchdog: ", "traps: ", caller ids).

_KB = 1024
_PATTERNS: list[tuple[str, re.Pattern, dict]] = []


def _p(kind: str, rx: bytes, **conv) -> None:
    _PATTERNS.append((kind, re.compile(rx), conv))


# mm/oom_kill.c __oom_kill_process: "%s: Killed process %d (%s) total-vm:%lukB, anon-rss:%lukB,
# file-rss:%lukB, shmem-rss:%lukB, UID:%u pgtables:%lukB oom_score_adj:%hd" (older kernels stop
# earlier: the optional groups).
_p("oom_kill", rb"(?:Memory cgroup out of memory|Out of memory(?: \(oom_kill_allocating_task\))?): "
               rb"Kill(?:ed)? process (?P<pid>\d+) \((?P<comm>.*)\) total-vm:(?P<total_vm>\d+)kB, "
               rb"anon-rss:(?P<anon_rss>\d+)kB, file-rss:(?P<file_rss>\d+)kB"
               rb"(?:, shmem-rss:(?P<shmem_rss>\d+)kB)?(?:,? UID:(?P<uid>\d+))?")
# mm/oom_kill.c dump_oom_summary: "oom-kill:constraint=%s,nodemask=%*pbl" + cpuset's
# ",cpuset=%s,mems_allowed=%*pbl" + memcg's ",oom_memcg=PATH" or ",global_oom", ",task_memcg=PATH"
# + ",task=%s,pid=%d,uid=%d" (a kernel without memory cgroups prints no memcg part).
_p("oom_context", rb"oom-kill:constraint=(?P<oom_constraint>[A-Z_]+),.*?"
                  rb"(?:,oom_memcg=(?P<cgroup>.*?)|,global_oom)?(?:,task_memcg=(?P<task_cgroup>.*?))?"
                  rb",task=(?P<comm>.*),pid=\s*(?P<pid>\d+),uid=\s*(?P<uid>\d+)$")
# mm/memcontrol.c mem_cgroup_print_oom_meminfo (a memory cgroup's OOM, before oom-kill:):
# "memory: usage %llukB, limit %llukB, failcnt %lu"
_p("oom_memcg", rb"^memory: usage (?P<memory_usage>\d+)kB, limit (?P<memory_limit>\d+)kB, failcnt (?P<failcnt>\d+)")
# mm/oom_kill.c dump_header: "%s invoked oom-killer: gfp_mask=%#x(%pGg), order=%d, oom_score_adj=%hd"
_p("oom_invoked", rb"^(?P<comm>.*) invoked oom-killer: ")
# arch/x86/mm/fault.c show_signal_msg: "%s%s[%d]: segfault at %lx ip %px sp %px error %lx" then
# print_vma_addr's " in %s[%lx+%lx]" (other architectures print the same start).
_p("segfault", rb"^(?P<comm>.*)\[(?P<pid>\d+)\]: segfault at (?P<address>[0-9a-f]+) ip (?P<ip>[0-9a-f]+) "
               rb"sp (?P<sp>[0-9a-f]+) error (?P<error_code>[0-9a-f]+)(?: in (?P<library>[^\[]*)\[)?")
# arch/x86/kernel/traps.c show_signal (pr_fmt "traps: "): "%s[%d] %s%s ip:%lx sp:%lx error:%lx"
# with type "trap " for traps and "" for general protection, then " in %s[%lx+%lx]".
_p("trap", rb"^(?:traps: )?(?P<comm>.*)\[(?P<pid>\d+)\] (?:trap )?(?P<trap>[a-z][a-z0-9 ()_-]*?) "
           rb"ip:(?P<ip>[0-9a-f]+) sp:(?P<sp>[0-9a-f]+) error:(?P<error_code>[0-9a-f]+)"
           rb"(?: in (?P<library>[^\[]*)\[)?")
# kernel/hung_task.c check_hung_task: "INFO: task %s:%d blocked for more than %ld seconds."
_p("hung_task", rb"^INFO: task (?P<comm>.*):(?P<pid>\d+) blocked for more than (?P<seconds>\d+) seconds\.")
# kernel/watchdog.c watchdog_timer_fn (pr_fmt "watchdog: "):
# "BUG: soft lockup - CPU#%d stuck for %us! [%s:%d]"
_p("soft_lockup", rb"BUG: soft lockup - CPU#(?P<cpu>\d+) stuck for (?P<seconds>\d+)s! \[(?P<comm>.*):(?P<pid>\d+)\]")
# kernel/watchdog_perf.c (watchdog_hld.c before 6.6) and the buddy detector:
# "Watchdog detected hard LOCKUP on cpu %d"
_p("hard_lockup", rb"Watchdog detected hard LOCKUP on cpu (?P<cpu>\d+)")
# net/ipv4/tcp_input.c tcp_syn_flood_action (pr_fmt "TCP: "): "%s: Possible SYN flooding on port
# %pI4:%u. %s." ("[%pI6c]:%u" for IPv6; "port %d" alone before 5.8).
_p("syn_flood", rb"Possible SYN flooding on port (?:\[(?P<addr6>[0-9a-fA-F:.]+)\]:|(?P<addr4>[0-9.]+):)?"
                rb"(?P<port>\d+)\. (?P<action>Sending cookies|Dropping request)")
# net/netfilter/nf_conntrack_core.c: "nf_conntrack: table full, dropping packet"
_p("conntrack_full", rb"nf_conntrack: table full, dropping packet")
# fs/ext4/super.c (ext2/ext3 alike): ext4_msg "Remounting filesystem read-only"; btrfs "forced
# readonly"; XFS shuts down instead (below).
_p("fs_readonly", rb"^(?P<fs_type>EXT[234])-fs \((?P<block_device>[^)]+)\): Remounting filesystem read-only")
_p("fs_readonly", rb"^(?P<fs_type>BTRFS)(?: \w+)? \(device (?P<block_device>[^):]+)(?:: [^)]*)?\): forced readonly")
# fs/ext4/super.c __ext4_error and friends: "EXT4-fs error (device %s): %s:%d: ..."
_p("fs_error", rb"^(?P<fs_type>EXT[234])-fs error \(device (?P<block_device>[^)]+)\)")
# fs/jbd2/journal.c jbd2_journal_abort: "Aborting journal on device %s." (the journal of ext3/4 or
# ocfs2: DEVICE-INODE)
_p("fs_error", rb"^Aborting journal on device (?P<block_device>[^ ]+?)(?:-\d+)?\.$")
# fs/btrfs: "BTRFS error (device %s[: state %s]): ...", "BTRFS critical (device ...)",
# "BTRFS: error (device %s) in %s:%d: errno=%d ..."
_p("fs_error", rb"^(?P<fs_type>BTRFS)(?: (?:error|critical)|: error) \(device (?P<block_device>[^):]+)(?:: [^)]*)?\)")
# fs/xfs xfs_alert/xfs_err: "XFS (%s): ..." with a corruption, an I/O error or a shutdown
_p("fs_error", rb"^(?P<fs_type>XFS) \((?P<block_device>[^)]+)\): .*(?:[Cc]orrupt|I/O error|[Ss]hut ?down|log error)")
# block/blk-core.c blk_print_req_error: "%s error, dev %s, sector %llu op 0x%x:(%s) ..." (before
# 5.x with a "blk_update_request: " or "print_req_error: " caller; "end_request: " earlier still)
_p("io_error", rb"^(?:\w+: )?(?P<trap>[A-Za-z][\w /-]*?) error, dev (?P<block_device>[^,]+), sector (?P<sector>\d+)")
# fs/buffer.c: "Buffer I/O error on dev %pg, logical block %llu, ..."
_p("io_error", rb"^Buffer I/O error on dev (?P<block_device>[^,]+), logical block (?P<sector>\d+)")

# The kinds the parsers give, in the order they are tried.
PARSED_KINDS = tuple(dict.fromkeys(k for k, _, _ in _PATTERNS))

_INT = {"pid", "uid", "seconds", "cpu", "port", "sector", "failcnt"}
_KB_FIELDS = {"anon_rss", "file_rss", "shmem_rss", "total_vm", "memory_usage", "memory_limit"}
_TEXT = {"comm", "cgroup", "task_cgroup", "library", "block_device"}
_ASCII = {"oom_constraint", "address", "ip", "sp", "trap", "fs_type"}

# Words that say a record may be one of the kinds: one search before the patterns (most kernel
# records are none of them).
_MAYBE = re.compile(rb"Kill|oom-kill|memory: usage|invoked oom|segfault|ip:|INFO: task|lockup|LOCKUP|SYN flooding|"
                    rb"table full|Remounting|forced readonly|-fs error|Aborting journal|BTRFS|XFS|error, dev|I/O error")


def may_be_incident(r: Record) -> bool:
    """The record is the kernel's and has a word of the parsed kinds (cheap: no pattern run)."""
    return r.facility == 0 and _MAYBE.search(r.text) is not None


def parse_message(text: bytes) -> dict:
    """The kind and fields of one record's message (as /dev/kmsg gives it); {} when it is none of
    the kinds."""
    if _MAYBE.search(text) is None:
        return {}
    for kind, rx, _ in _PATTERNS:
        m = rx.search(text)
        if m is None:
            continue
        out: dict = {"kind": kind}
        for k, v in m.groupdict().items():
            if v is None:
                continue
            if k in _INT:
                out[k] = int(v)
            elif k in _KB_FIELDS:
                out[k] = int(v) * _KB
            elif k == "error_code":
                out[k] = int(v, 16)
            elif k in ("addr6", "addr4"):
                out["local_addr"] = v.decode("ascii")
            elif k == "action":
                out["detail"] = v.decode("ascii")
            elif k in _TEXT:
                out[k] = _text(v.strip() if k == "library" else v)
            elif k in _ASCII:
                out[k] = v.decode("ascii", "backslashreplace")
        if kind == "io_error":
            out["detail"] = out.pop("trap", None) or "I/O"
        elif kind == "segfault":
            out["trap"] = "segfault"
        if kind == "oom_context" and "cgroup" not in out and b",global_oom," in text:
            out["detail"] = "global_oom"
        return out
    return {}


# ---------------------------------------------------------------------------
class KernelLog(Follower):
    """Follows the kernel log for a recorder: a reader thread fills a bounded buffer; each
    snapshot takes its records (:meth:`take`), and the record loop says whether the snapshot was
    written (:meth:`written`) or dropped (:meth:`unwritten`: they go to the next one)."""

    def __init__(self, reader: KmsgReader | None, boot_id: str | None, off: str | None = None,
                 capacity: int = CAPACITY, redact: bool = True, identity=None):
        self.reader = reader
        self.boot_id = boot_id
        self.off = off  # why the kernel log is not read (None: it is)
        self.capacity = capacity
        self.redact = redact
        self.identity = identity  # pid -> (comm, start_time) of a live process, or None
        self._buf: list[Record] = []
        self._lock = threading.Lock()  # the buffer and its counts
        self._reading = threading.Lock()  # the reader (the thread's polls and take's)
        self._dropped = 0
        self._lost_said = 0  # reader.lost already put on a snapshot
        self._taken = Taken()  # records of a snapshot not yet written
        self._oom: dict[int, dict] = {}  # pid -> its latest oom_context (a few dozen at most)
        self.on_report = None  # (kind, fields) of each parsed report as it is read: the triggers'
        self._memcg: dict | None = None  # the last oom_memcg record, until the oom_context it precedes

    # -- starting and stopping ------------------------------------------------
    @classmethod
    def start(cls, store: "Store | None", host: str, boot_id: str | None, redact: bool = True,
              opener=KmsgReader.open, identity=None, capacity: int = CAPACITY) -> "KernelLog":
        """Open the kernel log (OPENER: /dev/kmsg's by default), skip what STORE already holds of
        this boot, read the backlog, and follow it in a thread when the reader has a descriptor
        to wait on. Never raises: a kernel log that cannot be read gives a KernelLog that says why
        (``off``)."""
        try:
            reader = opener()
        except Unavailable as e:
            return cls(None, boot_id, off=str(e))
        log = cls(reader, boot_id, redact=redact, identity=identity, capacity=capacity)
        if store is not None and boot_id is not None:
            try:
                last = last_stored(store, host, boot_id)
            except Exception as e:  # noqa: BLE001 - an unreadable file must not stop recording
                last = None
                store.say(f"kernel log: the last record stored could not be read back ({type(e).__name__}: {e}); "
                          "records of this boot still in the ring buffer may be stored twice")
            if last is not None:
                reader.skip_to(last)
        try:
            log.poll(backlog=True)
        except OSError as e:
            reader.close()
            return cls(None, boot_id, off=f"reading the kernel log failed: {e.strerror or e}")
        if reader.fileno() is not None:
            log.start_thread("procsnap-kmsg")
        return log

    def stop(self) -> None:
        self.stop_thread()
        if self.reader is not None:
            self.reader.close()

    FAILED = "reading the kernel log failed"

    def follow_fds(self) -> list[int]:
        return [self.reader.fileno()]

    def poll(self, backlog: bool = False) -> None:
        """Move the records the kernel has now into the buffer; what does not fit is counted."""
        with self._reading:
            recs = self.reader.read(limit=self.capacity)
        with self._lock:
            buf = self._buf
            room = self.capacity - len(buf)
            if len(recs) > room:
                kept = recs[:max(room, 0)]
                reserve = self.capacity + self.capacity // 8
                for r in recs[len(kept):]:
                    if len(buf) + len(kept) < reserve and may_be_incident(r):
                        kept.append(r)
                    else:
                        self._dropped += 1
                recs = kept
            if backlog:
                for r in recs:
                    r.backlog = True
            buf.extend(recs)
        if self.identity is not None or self.on_report is not None:
            for r in recs:
                if may_be_incident(r):
                    f = parse_message(r.text)
                    if self.on_report is not None and not backlog and f.get("kind"):
                        self.on_report(f["kind"], f)  # a trigger: as the kernel reports it
                    # while the process a report names may still be there
                    if self.identity is not None and f.get("kind") in _MAYBE_ALIVE and "pid" in f:
                        when = dt.datetime.fromtimestamp(r.wall_us / 1e6, UTC) if r.wall_us is not None else None
                        r.start_time = self._start_time(f["pid"], f.get("comm"), when)

    # -- what each snapshot gets ---------------------------------------------
    def pressing(self) -> bool:
        """The buffer holds half its capacity: the record loop takes a snapshot early."""
        return len(self._buf) >= self.capacity // 2

    def take(self, snapshot_id: int, ts: dt.datetime):
        """(the kernel_events table of the records read since the last snapshot, or None when
        there are none; the snapshots columns about the kernel log)."""
        if self.reader is not None and self.off is None:
            try:
                self.poll()  # up to now, whether or not the thread has woken yet
            except OSError as e:
                self.off = f"reading the kernel log failed: {e.strerror or e}"
        with self._lock:
            recs, self._buf = self._buf, []
            dropped, self._dropped = self._dropped, 0
        lost = 0
        if self.reader is not None:
            lost = self.reader.lost - self._lost_said
            self._lost_said = self.reader.lost
        # A snapshot not written gives its records back: they come first.
        recs, dropped, lost = self._taken.take(recs, dropped, lost)
        meta = {"kernel_log": "off: " + self.off if self.off else "read",
                "events_dropped": dropped, "kernel_events_lost": lost if self.reader is not None else None}
        if not recs:
            return None, meta
        from recorder.collect.tables import to_table
        rows = [self._row(r) for r in recs]
        return to_table(TABLE, rows, {"snapshot_id": snapshot_id, "ts": ts, "boot_id": self.boot_id}), meta

    def written(self) -> None:
        self._taken.written()

    def unwritten(self) -> None:
        """The snapshot that took the records was not written: the next one takes them again (as
        many as the buffer holds: the rest are counted as dropped)."""
        self._taken.unwritten(self.capacity)

    def _row(self, r: Record) -> dict:
        text = r.text
        if self.redact:
            from recorder.redact import redact_text
            text = redact_text(text)
        row = {"seq": r.seq, "kernel_ts_us": r.ts_us, "priority": r.priority, "level": LEVELS[r.priority],
               "facility": r.facility, "backlog": r.backlog,
               "time": dt.datetime.fromtimestamp(r.wall_us / 1e6, UTC) if r.wall_us is not None else None,
               "text": text.decode("ascii", "backslashreplace"),
               "subsystem": _text(r.subsystem) if r.subsystem is not None else None,
               "device": _text(r.device) if r.device is not None else None}
        if r.facility != 0:  # written by user space (facility user and others): not the kernel's report
            return row
        fields = parse_message(r.text)
        kind = fields.get("kind")
        if kind == "oom_memcg":
            self._memcg = fields
        elif kind == "oom_context" and "pid" in fields:
            memcg, self._memcg = self._memcg, None
            if memcg is not None and fields.get("oom_constraint") == "CONSTRAINT_MEMCG":
                fields.update({k: memcg[k] for k in ("memory_usage", "memory_limit")})
            if len(self._oom) > 64:
                self._oom.clear()
            self._oom[fields["pid"]] = fields
        elif kind == "oom_kill":
            ctx = self._oom.get(fields.get("pid"))  # (kept: a snapshot not written builds its rows again)
            if ctx:
                for k in ("oom_constraint", "cgroup", "task_cgroup", "detail", "memory_usage", "memory_limit"):
                    if k in ctx:
                        fields.setdefault(k, ctx[k])
        row.update(fields)
        if r.start_time is not None:
            row["start_time"] = r.start_time
        return row

    def _start_time(self, pid: int, comm: str | None, when: dt.datetime | None):
        """The start time of PID when the process is still there (or known to the process events),
        has the comm the record names, and started before the record (not a later process given
        the same pid)."""
        try:
            found = self.identity(pid)
        except Exception:  # noqa: BLE001 - gone, denied, unparsable: no start time
            return None
        if not found:
            return None
        name, started = found
        if comm is not None and name is not None and name != comm:
            return None
        if when is not None and started > when + dt.timedelta(seconds=1):
            return None
        return started


# Kinds whose process may still be alive when the record is read (a hung task, a task stuck in
# a lockup, a crashing process writing its core dump): their start time is looked up.
_MAYBE_ALIVE = {"hung_task", "soft_lockup", "segfault", "trap"}


def last_stored(store: "Store", host: str, boot_id: str) -> int | None:
    """The highest sequence number of BOOT_ID stored for HOST in the recording (None: none).

    Looks at the newest files first and stops at the first one that holds rows: the recorder
    writes records in order, and a record of another boot there means this boot has none."""
    import pyarrow.parquet as pq  # not pyarrow.compute: ~11 MB for the recorder's whole life
    from recorder.store.layout import file_range, partition_value, select_visible
    want = f"host={partition_value(host)}"
    files = []
    for hostname, _, d in store.partitions(TABLE):
        if hostname != want:
            continue
        visible, _ = select_visible(store.listdir(d))
        for name in visible:
            r = file_range(name)
            if r is not None:
                files.append((r[1], d / name))
    for _, p in sorted(files, key=lambda x: x[0], reverse=True):
        with store.open_read(p) as f:
            t = pq.ParquetFile(f).read(columns=["boot_id", "seq"], use_threads=False)
        if not t.num_rows:
            continue
        return max((q for b, q in zip(t.column("boot_id").to_pylist(), t.column("seq").to_pylist())
                    if b == boot_id and q is not None), default=None)
    return None


def follow(store: "Store", collector, redact: bool = True, known=None) -> KernelLog:
    """The kernel log followed for a recorder writing COLLECTOR's snapshots into STORE (its host
    and boot; start times of live processes looked up through it, else through KNOWN: pid -> the
    start time the process events know, or None)."""
    def identity(pid: int):
        try:
            row = collector.processes.identity(pid, collector.btime)
        except Exception:  # noqa: BLE001 - gone, denied: perhaps the process events saw it
            started = known(pid) if known is not None else None
            return (None, started) if started is not None else None
        return row["name"], row["start_time"]
    return KernelLog.start(store, collector.host, collector.boot_id, redact=redact, identity=identity)
