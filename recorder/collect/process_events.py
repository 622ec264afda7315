"""Every process start, exec and exit between the snapshots: the kernel's process events,
listened to while `procsnap record` runs, one ``process_events`` row per event.

A reader thread waits on the process connector's socket and taskstats' (select: no wake-up
while nothing happens) and keeps the events in a bounded buffer (:data:`CAPACITY` events);
each snapshot takes them and writes them with its own files, under the same commit rule as
every other table (a snapshot dropped on a full disk gives them back to the next one). An
event that does not fit is counted in ``snapshots.process_events_dropped`` (and
``events_dropped``); events the kernel could not queue to the socket, in
``process_events_lost``.

At an exec the thread reads /proc/PID as `processes` does (the same reader, so the command
line is redacted by the same function); at a fork, the child's start time (its identity). A
process that is gone by then gives NULL fields and the reason in ``unread``. Exit rows get the
task's taskstats exit record: the kernel sends it before the connector's exit event, so one
read of both sockets (taskstats' last) finds it.

Threads' events (a fork whose child is a thread, a thread's exit or comm) are not stored
unless asked (``thread_events``): the threads a process starts are counted (a 'threads' row
per process and snapshot).
"""

from __future__ import annotations

import datetime as dt
import os
import threading

from recorder.collect.events import Follower, Taken
from recorder.source import proc_events as PE
from recorder.source.kmsg import wall_offset_us

UTC = dt.timezone.utc
CAPACITY = 32768  # events held between two snapshots; more are counted as dropped
TABLE = "process_events"
# Every kind a row may have: the connector's (a thread's prefixed thread_, except exec, which is
# always the process's) and 'threads', the per-process count of threads started.
_EVENT_KINDS = tuple(k for k in PE.KINDS.values() if k != "ack")
ROW_KINDS = _EVENT_KINDS + ("threads",) + tuple("thread_" + k for k in _EVENT_KINDS if k != "exec")
_STARTS = 1 << 17  # processes whose start time is remembered from their fork (or a snapshot) to their exit
_STATS = 4096  # taskstats records waiting for their exit event (it follows within a read)
_BATCH = 2048  # rows turned into an Arrow table at once
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def _text(b: bytes | None) -> tuple[str | None, bytes | None]:
    if b is None:
        return None, None
    from recorder.source.procfs import split_text
    return split_text(b)


class ProcessEvents(Follower):
    """Listens to the process events for a recorder: :meth:`take` gives each snapshot its rows,
    :meth:`written` / :meth:`unwritten` say whether that snapshot was written."""

    def __init__(self, connector: PE.Connector | None, boot_id: str | None, off: str | None = None,
                 taskstats: PE.Taskstats | None = None, taskstats_off: str | None = None,
                 capacity: int = CAPACITY, reader=None, thread_events: bool = False, clock=wall_offset_us):
        self.connector = connector
        self.taskstats = taskstats
        self.boot_id = boot_id
        self.off = off
        self.taskstats_off = taskstats_off
        self.capacity = capacity
        self.reader = reader  # (pid, what: 'exec' | 'start') -> dict of columns, or a str: why unread
        self.thread_events = thread_events
        self.clock = clock
        self._buf: list[dict] = []  # rows not yet in an Arrow table
        self._tables: list = []  # rows held as Arrow tables, _held of them
        self._held = 0
        self._lock = threading.Lock()  # the sockets, the buffer and its counts
        self._dropped = 0
        self._threads: dict[int, list] = {}  # pid -> [threads it started, its start time, pid]
        self._stats: dict[int, object] = {}  # tid -> Taskstats exit record not yet matched
        self._stats_old: dict[int, object] = {}
        self._starts: dict[int, dt.datetime] = {}  # pid -> start time read at fork or exec
        self._ended: dict[int, dt.datetime] = {}  # pid -> start time of its latest exit seen
        self._lost_said = 0
        self._taken = Taken()  # Arrow tables of a snapshot not yet written

    # -- starting and stopping ------------------------------------------------
    @classmethod
    def start(cls, boot_id: str | None, reader=None, thread_events: bool = False, capacity: int = CAPACITY,
              opener=PE.Connector.open, taskstats_opener=PE.Taskstats.open) -> "ProcessEvents":
        """Subscribe to the process connector and taskstats' exit records and follow them in a
        thread. Never raises: a source that cannot be read says why (``off``, ``taskstats_off``)."""
        try:
            conn = opener()
        except PE.Unavailable as e:
            return cls(None, boot_id, off=str(e))
        try:
            ts, ts_off = taskstats_opener(), None
        except PE.Unavailable as e:
            ts, ts_off = None, str(e)
        pe = cls(conn, boot_id, taskstats=ts, taskstats_off=ts_off, capacity=capacity, reader=reader,
                 thread_events=thread_events)
        pe.start_thread("procsnap-procev")
        return pe

    def stop(self) -> None:
        self.stop_thread()
        for s in (self.connector, self.taskstats):
            if s is not None:
                s.close()

    FAILED = "reading the process connector failed"

    def follow_fds(self) -> list[int]:
        return [self.connector.fileno()] + ([self.taskstats.fileno()] if self.taskstats is not None else [])

    def poll(self) -> None:
        """Move the events the kernel has sent into the buffer; what does not fit is counted."""
        with self._lock:
            self._poll()

    def _poll(self) -> None:
        evs = self.connector.read()
        # Read last: the kernel sends an exit's record before the connector's exit event.
        stats = self._stats
        for tid, st in (self.taskstats.read() if self.taskstats is not None else ()):
            if st.tgid not in (None, tid) and not self.thread_events:
                continue  # a thread's: no row to go to
            if len(stats) >= _STATS:  # records no exit event claimed (older kernels' threads')
                del stats[next(iter(stats))]
            stats[tid] = st
        threads = self._threads
        room = self.capacity - self._held - len(self._buf)
        last_exec = {e.pid: i for i, e in enumerate(evs) if e.what == PE.EXEC}
        keep, new_threads = [], []
        for i, e in enumerate(evs):
            if e.pid != e.tid and e.what != PE.EXEC and not self.thread_events:
                if e.what == PE.FORK:  # a thread started: counted; its other events are not kept
                    t = threads.get(e.pid)
                    if t is None:
                        threads[e.pid] = t = [0, None, e.pid]
                        new_threads.append(t)
                    t[0] += 1
                continue
            if room <= 0:
                self._dropped += 1
                continue
            room -= 1
            keep.append((i, e))
        # /proc of the execs first (a short-lived program is gone within a millisecond), then
        # the start time of forked processes that did not exec in this read (an exec gives it).
        for i, e in keep:
            if e.what == PE.EXEC:
                if last_exec[e.pid] != i:
                    e.info = "proc: exec'd again"  # /proc shows the later program now
                else:
                    self._read(e)
        for i, e in keep:
            if e.what == PE.FORK and e.pid == e.tid and e.pid not in last_exec:
                self._read(e)
        for t in new_threads:  # the identity of a process whose threads are counted
            t[1] = self._starts.get(t[2])
        self._buf += [self._row(e) for _, e in keep]
        if len(self._buf) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        """The rows held as Python dicts into an Arrow table (a tenth of their memory)."""
        if self._buf:
            from recorder.collect.tables import to_table
            rows = self._buf  # by column: Arrow builds them several times faster than from dicts
            cols = {k: [r.get(k) for r in rows] for k in set().union(*rows)}
            self._tables.append(to_table(TABLE, cols, {"snapshot_id": 0, "ts": _EPOCH, "boot_id": self.boot_id},
                                         n=len(rows)))
            self._held += len(self._buf)
            self._buf = []

    def _read(self, e: PE.Event) -> None:
        if self.reader is None:
            return
        try:
            info = self.reader(e.pid, "exec" if e.what == PE.EXEC else "start")
        except Exception as ex:  # noqa: BLE001 - a process read must never stop the listener
            info = f"proc: {type(ex).__name__}"
        e.info = info
        if isinstance(info, dict) and info.get("start_time") is not None:
            starts = self._starts
            if len(starts) >= _STARTS:
                starts.clear()
            starts[e.pid] = info["start_time"]

    # -- what each snapshot gets ---------------------------------------------
    def pressing(self) -> bool:
        """The buffer holds half its capacity: the record loop takes a snapshot early."""
        return self._held + len(self._buf) >= self.capacity // 2

    def saw(self, processes) -> None:
        """The start times of the processes a snapshot saw (its ``processes`` table, or None):
        the exit of a process that started before the listener, or whose fork was dropped, gets
        its identity from them. A start time read at its fork or exec is never replaced."""
        if processes is None or self.connector is None:
            return
        pids = processes.column("pid").to_pylist()
        starts = processes.column("start_time").to_pylist()
        with self._lock:
            known = self._starts
            if len(known) + len(pids) > _STARTS:
                known.clear()
            for pid, start in zip(pids, starts):
                if start is not None:
                    known.setdefault(pid, start)

    def started(self, pid: int):
        """The start time of PID that the events gave (a live process's, or the last one's that
        exited with that pid), or None."""
        return self._starts.get(pid) or self._ended.get(pid)

    def take(self, snapshot_id: int, ts: dt.datetime):
        """(the process_events table of the events since the last snapshot, or None when there
        are none; the snapshots columns about the process events)."""
        with self._lock:
            if self.connector is not None and self.off is None:
                try:
                    self._poll()
                except OSError as e:
                    self.off = f"reading the process connector failed: {e.strerror or e}"
            threads, self._threads = self._threads, {}
            self._buf += [{"kind": "threads", "pid": pid, "threads": n, "start_time": start}
                          for pid, (n, start, _) in threads.items()]
            self._flush()
            tables, self._tables, self._held = self._tables, [], 0
            dropped, self._dropped = self._dropped, 0
            # A record not matched waits one more snapshot (its exit event may come just after).
            self._stats_old, self._stats = self._stats, {}
        lost = 0
        if self.connector is not None:
            lost = self.connector.lost - self._lost_said
            self._lost_said = self.connector.lost
        # A snapshot not written gives its rows back: they come first.
        tables, dropped, lost = self._taken.take(tables, dropped, lost)
        on = self.connector is not None
        meta = {"process_events": "off: " + self.off if self.off else "read",
                "exit_accounting": None if not on else ("off: " + self.taskstats_off if self.taskstats_off
                                                        else "read"),
                "process_events_dropped": dropped if on else None,
                "process_events_lost": lost if on else None}
        if not tables:
            return None, meta
        import pyarrow as pa
        t = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        for name, v in (("snapshot_id", snapshot_id), ("ts", ts)):
            i = t.schema.get_field_index(name)
            f = t.schema.field(i)
            t = t.set_column(i, f, pa.repeat(pa.scalar(v, f.type), t.num_rows))
        return t, meta

    def written(self) -> None:
        self._taken.written()

    def unwritten(self) -> None:
        """The snapshot that took the rows was not written: the next one takes them again (as
        many as the buffer holds: the rest are counted as dropped)."""
        self._taken.unwritten(self.capacity, _rows, _newest_rows)

    def _row(self, e: PE.Event) -> dict:
        kind = e.kind if e.pid == e.tid or e.what == PE.EXEC else "thread_" + e.kind
        row = {"kind": kind, "pid": e.pid, "tid": e.tid, "cpu": e.cpu, "kernel_ts_ns": e.ts_ns,
               "time": dt.datetime.fromtimestamp((e.ts_ns // 1000 + self.clock()) / 1e6, UTC)}
        w = e.what
        unread = []
        if w in (PE.FORK, PE.EXIT_EV, PE.COREDUMP, PE.NONZERO_EXIT):
            row["ppid"] = e.ppid
        if w == PE.COMM:
            row["name"], row["name_raw"] = _text(e.comm)
        elif w in (PE.UID, PE.GID):
            k = "uid" if w == PE.UID else "gid"
            row["r" + k], row[k] = e.code, e.code2
        elif w == PE.PTRACE:
            row["tracer_pid"] = e.code
        elif w in (PE.EXIT_EV, PE.NONZERO_EXIT):
            row["exit_status"], row["signal"], row["core_dumped"] = PE.exit_status(e.code)
            st = self._stats.pop(e.tid, None) or self._stats_old.pop(e.tid, None)
            if st is not None:
                row.update(_accounting(st))
            elif e.pid == e.tid:
                unread.append("taskstats: off" if self.taskstats is None else "taskstats: no record")
        info = e.info
        if isinstance(info, dict):
            row.update(info)
            if "unread" in info:
                unread.append(info["unread"])
        elif isinstance(info, str):
            unread.append(info)
        if row.get("start_time") is None and e.pid == e.tid:
            row["start_time"] = self._starts.get(e.pid)
        if w == PE.EXIT_EV and e.pid == e.tid:
            self._starts.pop(e.pid, None)
            if row.get("start_time") is not None:
                if len(self._ended) >= _STATS:
                    self._ended.clear()
                self._ended[e.pid] = row["start_time"]
        if unread:
            row["unread"] = ", ".join(unread)
        return row


def _rows(tables: list) -> int:
    return sum(t.num_rows for t in tables)


def _newest_rows(tables: list, n: int) -> list:
    import pyarrow as pa
    t = pa.concat_tables(tables)
    return [t.slice(t.num_rows - n)]


def _accounting(st) -> dict:
    """The process_events columns of a taskstats exit record (the C module's Taskstats)."""
    name, name_raw = _text(st.comm)
    return {"name": name, "name_raw": name_raw, "uid": st.uid, "gid": st.gid,
            "utime": st.utime / 1e6, "stime": st.stime / 1e6, "elapsed": st.etime / 1e6,
            "max_rss": st.hiwater_rss * 1024, "rchar": st.read_char, "wchar": st.write_char,
            "read_bytes": st.read_bytes, "write_bytes": st.write_bytes, "minflt": st.minflt,
            "majflt": st.majflt, "ctxsw_voluntary": st.ctxsw_voluntary, "ctxsw_involuntary": st.ctxsw_involuntary,
            "cpu_delay": st.cpu_delay_total / 1e9, "blkio_delay": st.blkio_delay_total / 1e9,
            "swapin_delay": st.swapin_delay_total / 1e9}


def proc_reader(collector):
    """(pid, what) -> the columns read from /proc/PID for COLLECTOR's host: at 'exec' the
    processes reader's row (its redaction) and cwd, at 'start' the start time; a str saying why
    when the process could not be read."""
    from recorder.collect import system
    from recorder.source.procfs import Denied, Gone
    btime = system.read_proc_stat(collector.fs)["btime"]
    procs = collector.processes
    fs = collector.fs

    def read(pid: int, what: str):
        try:
            if what == "start":
                return {"start_time": procs.identity(pid, btime)["start_time"]}
            row, _ = procs.read(pid, btime, False)
        except Gone:
            return "proc: gone"
        except Denied:
            return "proc: denied"
        except (OSError, ValueError) as e:
            return f"proc: {type(e).__name__}"
        if row["state"] in ("Z", "X"):  # exited, not yet reaped: its command line and paths are gone
            return {"ppid": row["ppid"], "start_time": row["start_time"], "name": row["name"],
                    "name_raw": row["name_raw"], "uid": row["uid"], "gid": row["gid"], "unread": "proc: exited"}
        out = {k: row[k] for k in ("ppid", "start_time", "name", "name_raw", "exe", "exe_raw", "cmdline",
                                   "cmdline_raw", "uid", "gid", "cgroup")}
        denied = row["denied"].split(",") if row["denied"] else []
        try:
            out["cwd"] = _text(os.readlink(os.fsencode(fs.path(pid, "cwd"))))[0]
        except PermissionError:
            denied.append("cwd")
        except OSError:
            pass
        if denied:
            out["unread"] = "proc: denied " + ",".join(denied)
        return out
    return read


def listen(collector, thread_events: bool = False, capacity: int = CAPACITY) -> ProcessEvents:
    """The process events followed for a recorder of COLLECTOR's host and boot."""
    return ProcessEvents.start(collector.boot_id, reader=proc_reader(collector), thread_events=thread_events,
                               capacity=capacity)
