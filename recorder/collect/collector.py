"""Collecting one snapshot of the host into Arrow tables.

Each table has its module: system.py (system, disks, nics), filesystems.py, processes.py,
threads.py, and the descriptor and socket code; the :class:`Collector` runs them in the schema's
order and returns a :class:`Snapshot`: the tables and each table's :class:`TableStatus`.

Races with /proc are normal: a process or thread that vanishes mid-read is
skipped and counted as *gone*; a permission denial leaves NULLs, names the
refused source in ``processes.denied`` and is counted as *denied*. Both counts
land in the ``snapshots`` row, so every report can say how complete it is.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import resource
import time
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at a snapshot's start

from recorder import __version__
from recorder.collect import system
from recorder.collect import descriptors
from recorder.collect.descriptors import FileRows, MapsCache
from recorder.collect.filesystems import FilesystemReader
from recorder.collect.processes import ProcessReader, UserNames
from recorder.collect.tables import to_table
from recorder.collect.threads import ThreadReader
from recorder.source.procfs import Denied, Gone, ProcFS
from recorder.source.native import describe, native as _native
from recorder.schema import COLLECTED, COUNTED, TABLES

if TYPE_CHECKING:
    import pyarrow as pa

UTC = dt.timezone.utc
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class TableStatus:
    """How one table of a snapshot went: its rows, the entries gone mid-read and those with a
    denial (None where the table does not count them), and the wall time it took."""

    rows: int
    gone: int | None
    denied: int | None
    ms: float


class Snapshot:
    """One snapshot: its identity, one Arrow table per schema table, and each collected table's
    :class:`TableStatus`.

    Tables hold the stored columns only; ``host`` and ``date`` are partition
    values carried here and in the folder names.
    """

    __slots__ = ("snapshot_id", "ts", "host", "tables", "status")

    def __init__(self, snapshot_id: int, ts: dt.datetime, host: str, tables: dict | None = None):
        self.snapshot_id = snapshot_id
        self.ts = ts
        self.host = host
        self.tables: dict[str, pa.Table] = {} if tables is None else tables
        self.status: dict[str, TableStatus] = {}

    @property
    def date(self) -> dt.date:
        return self.ts.date()


@dataclass
class ProcessPass:
    """What one pass over the processes gives: the processes rows, and the threads and
    descriptors read in the same pass (so that each of their rows has its process row)."""

    processes: list = field(default_factory=list)
    threads: list = field(default_factory=list)  # (pid, ThreadReader.read_batch's rows) per process
    files: FileRows | None = None
    gone: int = 0
    denied: int = 0
    threads_gone: int = 0
    threads_denied: int = 0
    ms_threads: float = 0.0
    ms_open_files: float = 0.0


_POOL_SET = False


def use_one_allocator() -> None:
    """Arrow allocates through malloc, as Python does, so that memory one of them frees serves
    the other's next allocations: with its own pool (mimalloc by default) Arrow keeps pages that
    Python cannot reuse, and a descriptor snapshot's peak stacks on both. This sets the pool
    pyarrow's Python calls pass; the C++ default (the Parquet reader's and writer's) comes from
    ARROW_DEFAULT_MEMORY_POOL, which the packages' __init__ set before pyarrow is imported."""
    global _POOL_SET
    if _POOL_SET:
        return
    _POOL_SET = True
    import pyarrow as pa
    try:
        pa.set_memory_pool(pa.system_memory_pool())
    except Exception:  # an Arrow without the choice keeps its default
        pass


def needed_tables(tables) -> tuple[str, ...]:
    """The tables a snapshot must collect to give these: threads and descriptors are read in the
    process pass, and sockets are resolved against the descriptors, so asking for one brings what
    it needs. In COLLECTED order."""
    wanted = set(tables)
    unknown = wanted - set(COLLECTED)
    if unknown:
        raise ValueError(f"not a collected table: {', '.join(sorted(unknown))}")
    if wanted & {"threads", "open_files", "sockets"}:
        wanted.add("processes")
    if "sockets" in wanted:
        wanted.add("open_files")
    return tuple(t for t in COLLECTED if t in wanted)


def self_rss() -> int | None:
    """This process's resident memory now (the resident pages of /proc/self/statm)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


class Collector:
    """Takes snapshots of one host, read through one :class:`ProcFS`."""

    def __init__(self, procfs: ProcFS | None = None, host: str | None = None,
                 tables: tuple[str, ...] = COLLECTED, interval: float | None = None, redact: bool = True):
        self.fs = procfs or ProcFS()
        # The C module reads files the way ProcFS does; a ProcFS subclass that reads otherwise (the
        # tests' fault injection) is read through its methods.
        self.native = _native if type(self.fs) is ProcFS else None
        self.redact = redact  # credentials in command lines (recorder/redact.py)
        self.host = host or os.uname().nodename  # socket.gethostname(), without importing socket
        self.tables = needed_tables(tables)
        self._pass_tables = self.tables  # the tables of the snapshot being taken
        self.interval = interval
        self.kernel = os.uname().release
        self.users = UserNames()
        self._filesystems = FilesystemReader()
        self.boot_id = self._boot_id()
        # The C parsers serve a fault-injecting ProcFS too (its files read through its methods).
        self.processes = ProcessReader(self.fs, _native, self.users, self.boot_id, redact)
        self.threads = ThreadReader(self.fs, _native, self.boot_id)
        self.skipped = 0  # set by the record loop before each snapshot
        self.next_files_in: float | None = None  # seconds to the next descriptor snapshot, when known
        self.maps = MapsCache()  # mem rows kept across snapshots

    # ------------------------------------------------------------------
    def _boot_id(self) -> str | None:
        try:
            return self.fs.read("sys/kernel/random/boot_id").strip().decode()
        except (Gone, Denied):
            return None

    # ------------------------------------------------------------------
    def snapshot(self, tables: tuple[str, ...] | None = None) -> Snapshot:
        """One snapshot of the collector's tables, or of these (a recorder on two cadences takes
        descriptors and sockets only on some snapshots)."""
        # Python's cycle collector off while the rows are made: rows hold no cycles (refcounting
        # frees them), and it would traverse every new tuple again and again.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._snapshot(tables)
        finally:
            if was_enabled:
                gc.enable()

    def _snapshot(self, tables: tuple[str, ...] | None) -> Snapshot:
        tables = self.tables if tables is None else needed_tables(tables)
        use_one_allocator()
        self._pass_tables = tables
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        ts = dt.datetime.now(UTC)
        snapshot_id = int(ts.timestamp() * 1_000_000)
        ts = dt.datetime.fromtimestamp(snapshot_id / 1_000_000, UTC)
        common = {"snapshot_id": snapshot_id, "ts": ts}
        with_boot = {**common, "boot_id": self.boot_id}
        meta: dict = {
            "boot_id": self.boot_id,
            "kernel": self.kernel,
            "procsnap_version": __version__,
            "reader": describe(),
            "interval_s": self.interval,
            "recorder_pid": os.getpid(),
            "skipped": self.skipped,
        }
        snap = Snapshot(snapshot_id, ts, self.host)
        # system first: it gives the boot time that process start times need.
        proc_stat = system.read_proc_stat(self.fs)
        btime = self.btime = proc_stat["btime"]
        passed: ProcessPass | None = None
        sockets = None
        for name in tables:
            t = time.perf_counter()
            if name == "system":
                table = to_table(name, [system.system_row(self.fs, proc_stat)], common)
            elif name == "disks":
                table = to_table(name, system.disk_rows(self.fs), common)
            elif name == "nics":
                table = to_table(name, system.nic_rows(self.fs), common)
            elif name == "filesystems":
                data = self._optional("self", "mountinfo")
                table = to_table(name, self._filesystems.rows(data) if data else [], common)
            elif name == "processes":
                passed = self.process_pass(btime, tables)
                table = to_table(name, passed.processes, common)
                passed.processes = None
                meta.update(processes_gone=passed.gone, processes_denied=passed.denied)
                # threads and descriptors were read in the pass: their time is theirs
                meta["ms_processes"] = -(passed.ms_threads + passed.ms_open_files)
                if "threads" in tables:
                    meta["ms_threads"] = passed.ms_threads
                if "open_files" in tables:
                    meta["ms_open_files"] = passed.ms_open_files
            elif name == "threads":
                table = to_table(name, self.threads.columns(passed.threads, btime), common)
                passed.threads = None
                meta.update(threads_gone=passed.threads_gone, threads_denied=passed.threads_denied)
            elif name == "open_files":
                # Socket descriptors get their TYPE, DEVICE and NAME from the socket tables of
                # their network namespace; the sockets table is built from them now.
                done = descriptors.finish(self.fs, self.native, passed.files, self.maps, "sockets" in tables,
                                          self.next_files_in)
                passed.files = None
                meta.update(open_files_gone=done.gone, open_files_denied=done.denied)
                sockets = done.sockets
                table = done.files.to_table(TABLES[name].arrow_schema(), with_boot)
                done = None
            else:  # sockets
                sockets = sockets or descriptors.no_sockets()
                meta.update(sockets_gone=0, sockets_denied=sockets.denied)
                table = to_table(name, sockets.columns, with_boot)
                sockets = None
            snap.tables[name] = table
            meta[f"ms_{name}"] = meta.get(f"ms_{name}", 0.0) + (time.perf_counter() - t) * 1000
        for name in tables:
            counted = name in COUNTED
            if counted:
                meta[f"{name}_seen"] = snap.tables[name].num_rows
            snap.status[name] = TableStatus(snap.tables[name].num_rows, meta.get(f"{name}_gone") if counted else None,
                                            meta.get(f"{name}_denied") if counted else None, meta[f"ms_{name}"])
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        meta["duration_ms"] = (time.perf_counter() - t0) * 1000
        meta["cpu_ms"] = ((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)) * 1000
        meta["recorder_rss"] = self_rss()
        snap.tables["snapshots"] = to_table("snapshots", [meta], common)
        return snap

    def process_pass(self, btime: int, tables: tuple[str, ...]) -> ProcessPass:
        """One pass over the processes: their rows, and their threads' and descriptors' when
        TABLES has them (read with each process, so that every thread and descriptor row has its
        process row in the same snapshot)."""
        out = ProcessPass()
        want_threads = "threads" in tables
        want_files = "open_files" in tables
        want_names = want_files or "sockets" in tables
        files = out.files = descriptors.new_rows(self.fs) if want_files else None
        t_threads = t_files = 0.0
        for pid in self.fs.pids():
            try:
                row, fds = self.processes.read(pid, btime, want_names)
            except (Gone, ValueError):
                # Vanished mid-read, or a file that no longer parses (it was
                # torn down under us): skipped and counted, never a crash.
                out.gone += 1
                continue
            except Denied:
                # Not even stat/status are readable (hidepid): no row at all.
                out.denied += 1
                continue
            if want_threads:
                t = time.perf_counter()
                try:
                    t_rows, t_gone, t_denied = self.threads.read_batch(
                        pid, (row["ctxsw_voluntary"], row["ctxsw_involuntary"]))
                except Gone:
                    out.gone += 1
                    continue
                except Denied:
                    t_rows, t_gone, t_denied = [], 0, 1
                finally:
                    t_threads += time.perf_counter() - t
            if want_files:
                t = time.perf_counter()
                try:
                    row["denied"] = descriptors.process_files(self.fs, self.native, self.maps, pid, row["start_time"],
                                                              fds, row["denied"], files, self.next_files_in)
                    files.flush()
                except Gone:
                    out.gone += 1
                    files.drop(pid)
                    continue
                finally:
                    t_files += time.perf_counter() - t
            out.processes.append(row)
            if want_threads:  # only now: a process gone during its descriptors takes its threads along
                out.threads.append((pid, t_rows))
                out.threads_gone += t_gone
                out.threads_denied += t_denied
            if row["denied"]:
                out.denied += 1
        self.processes.forget()
        out.ms_threads = t_threads * 1000
        out.ms_open_files = t_files * 1000
        return out

    # ------------------------------------------------------------------
    def _optional(self, *parts) -> bytes | None:
        try:
            return self.fs.read(*parts)
        except (Gone, Denied):
            return None

    # ------------------------------------------------------------------
    # What a live one-shot command needs, and no more (no Arrow tables, no pass over every
    # process when the caller names its processes): `procsnap lsof -p PID`, `procsnap ps -p PID`.

    def live_processes(self, pids=None) -> list[dict]:
        """Process rows (as the processes table has them) of these pids, or of every process;
        a process that is gone or unreadable is left out."""
        self.btime = system.read_proc_stat(self.fs)["btime"]
        rows = []
        for pid in sorted(set(pids)) if pids is not None else self.fs.pids():
            try:
                rows.append(self.processes.read(pid, self.btime, False)[0])
            except (Gone, Denied, ValueError):
                continue
        self.processes.forget()
        return rows

    def live_files(self, pids=None, sockets_only: bool = False) -> tuple[list[dict], FileRows, dict[str, list]]:
        """(process rows, descriptor rows, socket columns) of these pids or of every process
        (recorder/collect/descriptors.py: live_files)."""
        self.btime = system.read_proc_stat(self.fs)["btime"]
        try:
            return descriptors.live_files(self.fs, self.native, self.maps, pids,
                                          self._process_light if sockets_only else self._process, sockets_only)
        finally:
            self.processes.forget()

    def live_system(self) -> dict:
        """The system row (host memory, uptime, boot time, …) now."""
        ps = system.read_proc_stat(self.fs)
        self.btime = ps["btime"]
        return system.system_row(self.fs, ps)

    def live_threads(self, pid: int) -> list[dict]:
        """Thread rows of one process now (live_processes or live_system first: they set btime)."""
        return self.threads.read(pid, self.btime)[0]

    def _process(self, pid: int) -> tuple[dict, list[str] | None]:
        """The processes row of PID now and the names of its descriptors (live_processes or
        live_system first: they set btime)."""
        return self.processes.read(pid, self.btime, True)

    def _process_light(self, pid: int) -> tuple[dict, list[str] | None]:
        """What lsof shows of a process (command, user, start), and its fd names."""
        row = self.processes.identity(pid, self.btime)
        try:
            fds = self.fs.listdir(pid, "fd")
        except Denied:
            fds = None
        return row, fds
