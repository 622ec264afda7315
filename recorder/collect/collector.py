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
import stat
import time
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at a snapshot's start

from recorder import __version__
from recorder.source import procfs as P
from recorder.collect import system
from recorder.collect.descriptors import SHARED_ANON, FileRows, Mounts, SocketIndex
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
# Descriptor rows held as Python tuples before they become Arrow columns (FileRows.flush): a
# snapshot's peak memory grows with this, not with the host's count of descriptors.
FILE_CHUNK = 16384
# lsof's access mode by the permission bits of a /proc/PID/fd/N link (see procfs.mode_letter)
_MODES = {m: P.mode_letter(m) for m in (0, 0o200, 0o400, 0o600)}


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
    threads: list = field(default_factory=list)
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
        # PROCMAP_QUERY on the live /proc (a copied tree's maps are plain files); off once the
        # kernel says it has none.
        self._procmap = (type(self.fs) is ProcFS and self.fs.root == "/proc" and self.native is not None
                         and hasattr(self.native, "maps_query"))
        self.interval = interval
        self.kernel = os.uname().release
        self.users = UserNames()
        self._filesystems = FilesystemReader()
        self.boot_id = self._boot_id()
        # The C parsers serve a fault-injecting ProcFS too (its files read through its methods).
        self.processes = ProcessReader(self.fs, _native, self.users, self.boot_id, redact)
        self.threads = ThreadReader(self.fs, _native, self.boot_id)
        self.skipped = 0  # set by the record loop before each snapshot
        self.maps_refresh = 60.0
        self.next_files_in: float | None = None  # seconds to the next descriptor snapshot, when known
        self._maps_cache: dict = {}
        self._maps_seen: set = set()
        self._map_sizes: dict = {}

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
                table = to_table(name, passed.threads, common)
                passed.threads = None
                meta.update(threads_gone=passed.threads_gone, threads_denied=passed.threads_denied)
            elif name == "open_files":
                self._files_pass = passed.files  # what _collect_open_files resolves
                passed.files = None
                table = self._collect_open_files(meta, proc_stat).to_table(TABLES[name].arrow_schema(), with_boot)
            else:  # sockets
                table = to_table(name, self._collect_sockets(meta, proc_stat), with_boot)
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
        files = out.files = FileRows(FILE_CHUNK, TABLES["open_files"].arrow_schema()) if want_files else None
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
                    t_rows, t_gone, t_denied = self.threads.read(
                        pid, btime, (row["ctxsw_voluntary"], row["ctxsw_involuntary"]))
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
                    self._files(pid, row, fds, files)
                    files.flush()
                except Gone:
                    out.gone += 1
                    files.drop(pid)
                    continue
                finally:
                    t_files += time.perf_counter() - t
            out.processes.append(row)
            if want_threads:  # only now: a process gone during its descriptors takes its threads along
                out.threads.extend(t_rows)
                out.threads_gone += t_gone
                out.threads_denied += t_denied
            if row["denied"]:
                out.denied += 1
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
        return rows

    def live_files(self, pids=None, sockets_only: bool = False) -> tuple[list[dict], FileRows, dict[str, list]]:
        """(process rows, descriptor rows, socket columns) of these pids or of every process.
        sockets_only keeps, besides socket descriptors, only each process's cwd (lsof -i needs
        no more, and it spares a stat of every other descriptor on the host)."""
        self.btime = P.parse_proc_stat(self.fs.read("stat"))["btime"]
        files = FileRows()
        procs = []
        for pid in sorted(set(pids)) if pids is not None else self.fs.pids():
            try:
                if sockets_only:
                    row, fds = self._process_light(pid)
                    self._sockets_of(pid, row, fds, files)
                else:
                    row, fds = self._process(pid)
                    self._files(pid, row, fds, files)
            except (Gone, Denied, ValueError):
                files.drop(pid)
                continue
            procs.append(row)
        # Named processes: only their sockets' lines of their protocols' tables are parsed.
        only = protos = None
        if pids is not None:
            only, protos = set(), set()
            for r, path in files.sockets:
                only.add(r[9])
                if protos is not None:
                    try:
                        protos.add(os.getxattr(path, "system.sockprotoname").decode("ascii", "replace").rstrip("\0"))
                    except OSError:  # closed meanwhile, or no name: every table then
                        protos = None
        sockets = self._socket_tables(files, only, protos)
        files.resolve(sockets)
        files.mounts = self.mounts()
        return procs, files, sockets.rows(files)

    def mounts(self) -> "Mounts | None":
        """The recorder's mount table now (None where /proc/self/mountinfo cannot be read)."""
        data = self._optional("self", "mountinfo")
        return Mounts(data) if data else None

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

    def _sockets_of(self, pid: int, row: dict, fds: list[str] | None, out: FileRows) -> None:
        base = (pid, row["start_time"])
        try:
            out.add_path(base, "cwd", None, None, self.fs.readlink(pid, "cwd"), self._stat(self.fs.path(pid, "cwd")))
        except Denied:
            out.add_denied(base, "cwd", None, self.fs.path(pid, "cwd"))
        for n in fds or ():
            p = self.fs.path(pid, "fd", n)
            try:
                target = os.readlink(p)
                if target.startswith("socket:["):
                    out.add_socket(base, n, _MODES[os.lstat(p).st_mode & 0o600], int(target[8:-1]), p)
            except OSError:
                continue

    def _collect_open_files(self, meta: dict, ps: dict) -> FileRows:
        files = getattr(self, "_files_pass", None) or FileRows()
        # Socket descriptors get their TYPE, DEVICE and NAME from the socket
        # tables of their network namespace, read once per namespace here.
        sockets = self._socket_tables(files)
        rows = files.resolve(sockets)  # the FileRows itself: snapshot() takes its columns
        rows.mounts = self.mounts()
        # Forget the mappings of process instances that are gone; and all of them when the next
        # descriptor snapshot is further away than maps_refresh (they would be re-read anyway,
        # and kept rows pin memory across the recorder's quiet time).
        if self.next_files_in is not None and self.next_files_in <= self.maps_refresh:
            self._maps_cache = {k: v for k, v in self._maps_cache.items() if k in self._maps_seen}
        else:
            self._maps_cache = {}
        self._maps_seen = set()
        self._map_sizes = {}
        meta["open_files_gone"] = files.gone
        meta["open_files_denied"] = files.denied
        # The sockets rows now, while the descriptor rows are Python tuples: the socket tables
        # (a dict per socket) are let go before the descriptor rows become Arrow columns.
        self._sockets_pass = (sockets.rows(files), sockets.denied) if "sockets" in self._pass_tables else None
        self._files_pass = None
        return rows

    def _collect_sockets(self, meta: dict, ps: dict) -> dict[str, list]:
        cols, denied = getattr(self, "_sockets_pass", None) or (SocketIndex().rows(FileRows()), 0)
        self._sockets_pass = None
        meta["sockets_gone"] = 0
        meta["sockets_denied"] = denied
        return cols

    def _socket_tables(self, files: "FileRows", only: set | None = None, protos: set | None = None) -> "SocketIndex":
        idx = SocketIndex()
        if only is not None and not only:
            return idx  # the named processes hold no socket
        seen_ns: set = set()
        # One representative process per network namespace that holds sockets;
        # the recorder's own namespace is always read (unowned sockets too).
        candidates: list[tuple[object, tuple]] = [("self", ("self", "net"))] + [
            (pid, (pid, "net")) for pid in files.socket_pids]
        for who, parts in candidates:
            try:
                ns = os.stat(self.fs.path(who, "ns", "net")).st_ino
            except OSError:
                ns = None
            if ns is not None and ns in seen_ns:
                continue
            if ns is None and who != "self":
                continue
            if ns is not None:
                seen_ns.add(ns)
            idx.read_namespace(self.fs, parts, ns, self.native, only, protos)
        return idx

    def _files(self, pid: int, row: dict, fds: list[str] | None, out: "FileRows") -> None:
        """lsof's rows for one process: cwd, rtd, txt, mem, then the numbered fds."""
        fs = self.fs
        base = (pid, row["start_time"])
        denied = row["denied"].split(",") if row["denied"] else []
        for fd, link in (("cwd", "cwd"), ("rtd", "root"), ("txt", "exe")):
            try:
                target = fs.readlink(pid, link)
            except Denied:
                out.add_denied(base, fd, None, fs.path(pid, link))
                if link != "exe":
                    denied.append(link)
                continue
            except Gone:
                if not fs.exists(pid, "stat"):
                    raise
                if link == "exe":  # kernel threads and zombies have none
                    out.add_unknown(base, fd, fs.path(pid, link))
                continue
            out.add_path(base, fd, None, None, target, self._stat(fs.path(pid, link)))
        self._maps(pid, row, base, out, denied)
        if fds is not None and self.native is not None:
            # The same loop in C (recorder/source/_native.c): same calls, same rows.
            rows, sockets, gone, n_denied = self.native.fd_rows(
                os.fsencode(fs.path(pid, "fd") + "/"), os.fsencode(fs.path(pid, "fdinfo") + "/"),
                sorted(fds, key=int), pid, base[1], out.native_shared, out.devs)
            if sockets:
                out.sockets.extend((rows[i], p) for i, p in sockets)
                if not out.socket_pids or out.socket_pids[-1] != pid:
                    out.socket_pids.append(pid)
            out.rows.extend(rows)
            out.gone += gone
            out.denied += n_denied
        elif fds is not None:
            # The hot loop (tens of thousands of descriptors): plain os calls on
            # paths built once, errors mapped here as ProcFS would map them.
            fd_dir = fs.path(pid, "fd") + "/"
            info_dir = fs.path(pid, "fdinfo") + "/"
            readlink, lstat, stat_ = os.readlink, os.lstat, os.stat
            S_ISREG, S_ISCHR, S_ISBLK = stat.S_ISREG, stat.S_ISCHR, stat.S_ISBLK
            modes = _MODES
            shared = out.shared_stat
            # Per descriptor: readlink; then a path gets stat, and fdinfo (offset and access mode)
            # when it is a file, device or block device; anything else, the lstat of the link for
            # its access mode; sockets, pipes and shared anonymous inodes get no stat of their own.
            for n in sorted(fds, key=int):
                p = fd_dir + n
                try:
                    target = readlink(p.encode("utf-8", "surrogateescape"))
                    if target[:1] == b"/":
                        st = stat_(p)
                        if S_ISREG(st.st_mode) or S_ISCHR(st.st_mode) or S_ISBLK(st.st_mode):
                            try:
                                with open(info_dir + n, "rb", buffering=0) as f:
                                    pos, mode = P.parse_fdinfo(f.read(4096))
                            except ValueError:
                                pos, mode = None, modes[lstat(p).st_mode & 0o600]
                        else:
                            pos, mode = None, modes[lstat(p).st_mode & 0o600]
                        out.add_path(base, n, mode, pos, target, st)
                        continue
                    if target[:8] == b"socket:[" and target[-1:] == b"]" and target[8:-1].isdigit():
                        # Every socket's file is opened O_RDWR (sock_alloc_file): its mode is
                        # always u, no lstat needed.
                        out.add_socket(base, n, "u", int(target[8:-1]), p)
                        continue
                    mode = modes[lstat(p).st_mode & 0o600]
                except PermissionError:
                    out.add_denied(base, n, int(n), p)
                    continue
                except OSError:
                    out.gone += 1  # closed while we looked
                    continue
                head = target[:6]
                if head == b"pipe:[" and target[-1:] == b"]" and target[6:-1].isdigit():
                    # Every pipe lives on pipefs: its inode is in the link, its device is the
                    # same for all, so one stat per snapshot serves every pipe.
                    st = shared.get(b"pipe")
                    if st is None:
                        try:
                            st = shared[b"pipe"] = stat_(p)
                        except OSError:
                            out.gone += 1
                            continue
                    out.add_pipe(base, n, int(n), mode, st.st_dev, int(target[6:-1]))
                    continue
                elif head == b"anon_i" and target in SHARED_ANON:
                    st = shared.get(target)
                    if st is None:
                        try:
                            st = shared[target] = stat_(p)
                        except OSError:
                            out.gone += 1
                            continue
                    out.add_path(base, n, mode, None, target, st)
                    continue
                try:
                    st = stat_(p)
                except OSError:
                    out.gone += 1
                    continue
                out.add_path(base, n, mode, None, target, st)
        row["denied"] = ",".join(dict.fromkeys(denied)) if denied else None

    def _stat(self, path: str):
        try:
            return os.stat(path)
        except OSError:
            return None

    def _maps(self, pid: int, row: dict, base: dict, out: "FileRows", denied: list[str]) -> None:
        """mem rows: one per distinct mapped file other than the executable.

        Mappings change rarely, so they are re-read only for a process instance
        not seen before or after MAPS_REFRESH seconds.
        """
        key = (pid, row["start_time"])
        now = time.monotonic()
        cached = self._maps_cache.get(key)
        if cached is None or now - cached[0] > self.maps_refresh:
            try:
                data = None
                if self._procmap and self.native is not None:
                    # The distinct mapped files through PROCMAP_QUERY (Linux 6.11): half the
                    # system time of the text, whose every line the kernel formats (0.10 s for
                    # 1000 processes against 0.22 s); the same entries (tests/test_native.py).
                    data = self.native.maps_query(self.fs.path(pid, "maps"))
                    if data is None:  # this kernel has no PROCMAP_QUERY: the text from now on
                        self._procmap = False
                    elif data is False:  # a query failed (the process changed): the text this time
                        data = None
                if data is None and self.native is not None:
                    (data,) = self.native.read_files(self.fs.path(pid), ("maps",), True)
                elif data is None:
                    data = self.fs.read(pid, "maps")
                if type(data) is int:
                    raise P._translate(OSError(data, os.strerror(data), self.fs.path(pid, "maps")))
            except Denied:
                denied.append("maps")
                return
            except Gone:
                if not self.fs.exists(pid, "stat"):
                    raise
                return
            # The rows themselves are kept: they depend on nothing but the process instance.
            exe = out.exe_key(pid)
            if self.native is not None:
                rows = self.native.maps_rows(data, base[0], base[1], exe, self._map_sizes, self.fs.path(pid, "map_files"))
            else:
                rows = self._maps_rows(data, pid, base, exe)
            cached = (now, rows)
            # Kept only when the next descriptor snapshot can use them: held until then, they
            # were 10 MB of tuples at the peak of a snapshot of 1000 processes.
            if self.next_files_in is not None and self.next_files_in <= self.maps_refresh:
                self._maps_cache[key] = cached
        self._maps_seen.add(key)
        out.rows.extend(cached[1])

    def _maps_rows(self, data: bytes, pid: int, base: tuple, exe) -> list[tuple]:
        """The mem rows of a maps file (recorder/source/_native.c: maps_rows does the same in C)."""
        rows = []
        seen = set()
        sizes = self._map_sizes
        pid_, start = base
        for rng, dev, inode, path in P.parse_maps(data):
            k = (dev, inode)
            if k in seen or k == exe:
                continue
            seen.add(k)
            if path.endswith(b" (deleted)"):
                deleted, size, path = True, None, path[:-10]
            else:
                # Libraries are mapped by most processes: stat each file
                # once per snapshot, not once per process.
                deleted, size = False, sizes.get(k, -1)
                if size == -1:
                    st = self._stat(self.fs.path(pid, "map_files", rng))
                    size = sizes[k] = st.st_size if st is not None else None
            try:
                text, raw = path.decode("utf-8"), None
            except UnicodeDecodeError:
                text, raw = P.split_text(path)
            rows.append((pid_, start, "DEL" if deleted else "mem", None, None, "REG", dev, size, None, inode, None,
                         text, raw, deleted))
        return rows
