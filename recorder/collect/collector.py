"""Collecting one snapshot of the host into Arrow tables.

Races with /proc are normal: a process or thread that vanishes mid-read is
skipped and counted as *gone*; a permission denial leaves NULLs, names the
refused source in ``processes.denied`` and is counted as *denied*. Both counts
land in the ``snapshots`` row, so every report can say how complete it is.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import pwd
import resource
import stat
import time
TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (3 ms of a snapshot's start)

from recorder import __version__
from recorder.source import procfs as P
from recorder.collect.descriptors import SHARED_ANON, FileRows, Mounts, SocketIndex
from recorder.collect.tables import to_table
from recorder.source.procfs import Denied, Gone, ProcFS
from recorder.source.native import native as _native
from recorder.redact import redact_cmdline
from recorder.collect.filesystems import FilesystemReader
from recorder.schema import COLLECTED, COUNTED, CPU_MODES, NET_COUNTERS, TABLES

if TYPE_CHECKING:
    import pyarrow as pa

UTC = dt.timezone.utc
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# Descriptor rows held as Python tuples before they become Arrow columns (FileRows.flush): a
# snapshot's peak memory grows with this, not with the host's count of descriptors.
FILE_CHUNK = 16384
# What _process reads of /proc/PID, in one call when the C module is there.
_PROC_FILES = ("stat", "status", "cmdline", "io", "limits", "cgroup")
# On the live /proc the descriptor limit comes from prlimit(2): the same numbers as the limits
# file (task->signal->rlim), one call in place of open, read and close of 16 formatted lines.
_PROC_FILES_PRLIMIT = ("stat", "status", "cmdline", "io", "cgroup")
_RLIMIT_NOFILE = getattr(resource, "RLIMIT_NOFILE", None)
# The io lines a processes row keeps, in _native.process_values' order.
_IO_KEYS = ("rchar", "wchar", "syscr", "syscw", "read_bytes", "write_bytes", "cancelled_write_bytes")
# lsof's access mode by the permission bits of a /proc/PID/fd/N link (see procfs.mode_letter)
_MODES = {m: P.mode_letter(m) for m in (0, 0o200, 0o400, 0o600)}


class Snapshot:
    """One snapshot: its identity and one Arrow table per schema table.

    Tables hold the stored columns only; ``host`` and ``date`` are partition
    values carried here and in the folder names.
    """

    __slots__ = ("snapshot_id", "ts", "host", "tables")

    def __init__(self, snapshot_id: int, ts: dt.datetime, host: str, tables: dict | None = None):
        self.snapshot_id = snapshot_id
        self.ts = ts
        self.host = host
        self.tables: dict[str, pa.Table] = {} if tables is None else tables

    @property
    def date(self) -> dt.date:
        return self.ts.date()


_POOL_SET = False


def use_one_allocator() -> None:
    """Arrow allocates through malloc, as Python does, so that memory one of them frees serves
    the other's next allocations: with its own pool (mimalloc by default) Arrow keeps pages that
    Python cannot reuse, and a descriptor snapshot's peak stacks on both (measured at 1000
    processes x 50 descriptors: 164 MB peak with mimalloc, 138 MB with malloc). This sets the pool
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


class Collector:
    """Takes snapshots of one host, read through one :class:`ProcFS`."""

    def __init__(self, procfs: ProcFS | None = None, host: str | None = None,
                 tables: tuple[str, ...] = COLLECTED, interval: float | None = None, redact: bool = True):
        self.fs = procfs or ProcFS()
        # The C loops read files the way ProcFS does; a ProcFS subclass that reads otherwise (the
        # tests' fault injection) gets the Python loops, which go through its methods.
        self.native = _native if type(self.fs) is ProcFS else None
        self._prlimit = (type(self.fs) is ProcFS and self.fs.root == "/proc" and hasattr(resource, "prlimit")
                         and _RLIMIT_NOFILE is not None)
        self.redact = redact  # credentials in command lines (recorder/redact.py)
        self.host = host or os.uname().nodename  # socket.gethostname(), without importing socket
        self.tables = needed_tables(tables)
        self._pass_tables = self.tables  # what _snapshot sets per pass
        # PROCMAP_QUERY on the live /proc (a copied tree's maps are plain files); off once the
        # kernel says it has none.
        self._procmap = (type(self.fs) is ProcFS and self.fs.root == "/proc" and self.native is not None
                         and hasattr(self.native, "maps_query"))
        self.interval = interval
        self.kernel = os.uname().release
        self._users: dict[int, str] = {}
        self._filesystems = FilesystemReader()
        self.boot_id = self._boot_id()
        self.skipped = 0  # set by the record loop before each snapshot
        self.maps_refresh = 60.0
        self.next_files_in: float | None = None  # seconds to the next descriptor snapshot, when known
        self._maps_cache: dict = {}
        self._maps_seen: set = set()
        self._map_sizes: dict = {}
        # The process pass in one C call a process (see _process), on the live /proc or a copy of
        # it; flags: 1 the descriptor limit by prlimit, 4 the fd folder's size is its count.
        self._fast = self.native is not None and hasattr(self.native, "process_values")
        self._fast_flags = (1 if self._prlimit else 0) | (4 if self._fast and self.fs.stat_counts_fds() else 0)
        # Our own pid as this /proc numbers it (a /proc of another pid namespace numbers it
        # otherwise): that process is read file by file, as the descriptors a process_values call
        # holds would be counted among its own (the C function also refuses its getpid()).
        try:
            self._self_pid = int(os.readlink(self.fs.path("self")))
        except (OSError, ValueError):
            self._self_pid = None

    # ------------------------------------------------------------------
    def _boot_id(self) -> str | None:
        try:
            return self.fs.read("sys/kernel/random/boot_id").strip().decode()
        except (Gone, Denied):
            return None

    def user_name(self, uid: int) -> str:
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self._users[uid] = name
        return name

    # ------------------------------------------------------------------
    def snapshot(self, tables: tuple[str, ...] | None = None) -> Snapshot:
        """One snapshot of the collector's tables, or of these (a recorder on two cadences takes
        descriptors and sockets only on some snapshots)."""
        # Python's cycle collector off while the rows are made: it ran every 700 new tuples and
        # traversed all of them again and again (6% of a 1000-process snapshot's CPU), and rows
        # hold no cycles: refcounting frees them.
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
        meta: dict = {
            "boot_id": self.boot_id,
            "kernel": self.kernel,
            "procsnap_version": __version__,
            "interval_s": self.interval,
            "recorder_pid": os.getpid(),
            "skipped": self.skipped,
        }
        snap = Snapshot(snapshot_id, ts, self.host)
        # system first: it gives the boot time that process start times need.
        proc_stat = P.parse_proc_stat(self.fs.read("stat"))
        self.btime = proc_stat["btime"]
        for name in tables:
            t = time.perf_counter()
            rows = getattr(self, f"_collect_{name}")(meta, proc_stat)
            if isinstance(rows, FileRows):  # row tuples in FIELDS order, converted a column at a time
                with_boot = {**common, "boot_id": self.boot_id}
                snap.tables[name] = rows.to_table(TABLES[name].arrow_schema(), with_boot)
            elif isinstance(rows, dict):  # columns (sockets)
                snap.tables[name] = to_table(name, rows, {**common, "boot_id": self.boot_id})
            else:
                snap.tables[name] = to_table(name, rows, common)
            meta[f"ms_{name}"] = meta.get(f"ms_{name}", 0.0) + (time.perf_counter() - t) * 1000
        for name in COUNTED:
            if name in tables:
                meta[f"{name}_seen"] = snap.tables[name].num_rows
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        meta["duration_ms"] = (time.perf_counter() - t0) * 1000
        meta["cpu_ms"] = ((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)) * 1000
        meta["recorder_rss"] = self._self_rss()
        snap.tables["snapshots"] = to_table("snapshots", [meta], common)
        return snap

    def _self_rss(self) -> int | None:
        try:
            st = P.parse_status(ProcFS("/proc").read("self", "status"))
            return P.status_kb(st, b"VmRSS")
        except (Gone, Denied, ValueError):
            return None

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
        self.btime = P.parse_proc_stat(self.fs.read("stat"))["btime"]
        rows = []
        for pid in sorted(set(pids)) if pids is not None else self.fs.pids():
            try:
                rows.append(self._process(pid)[0])
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
        ps = P.parse_proc_stat(self.fs.read("stat"))
        self.btime = ps["btime"]
        return self._collect_system({}, ps)[0]

    def live_threads(self, pid: int) -> list[dict]:
        """Thread rows of one process now (live_processes or live_system first: they set btime)."""
        return self._threads(pid)[0]

    def _process_light(self, pid: int) -> tuple[dict, list[str] | None]:
        """What lsof shows of a process (command, user, start), and its fd names."""
        st = P.parse_stat(self.fs.read_one(pid, "stat"))
        _, euid = P.status_ids(P.parse_status(self.fs.read_one(pid, "status")), b"Uid")
        name, name_raw = P.split_text(st["comm"])
        try:
            fds = self.fs.listdir(pid, "fd")
        except Denied:
            fds = None
        return {"pid": pid, "start_time": self._start_time(st["starttime"]), "name": name, "name_raw": name_raw,
                "uid": euid, "user": self.user_name(euid), "denied": None}, fds

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

    def _collect_system(self, meta: dict, ps: dict) -> list[dict]:
        row: dict = {
            "boot_time": dt.datetime.fromtimestamp(ps["btime"], UTC),
            "ncpus": ps["ncpus"],
            "ctxt": ps.get("ctxt"),
            "intr": ps.get("intr"),
            "forks": ps.get("processes"),
            "procs_running": ps.get("procs_running"),
            "procs_blocked": ps.get("procs_blocked"),
        }
        cpu = ps.get("cpu", [])
        for i, mode in enumerate(CPU_MODES):
            row[f"cpu_{mode}"] = cpu[i] / CLK_TCK if i < len(cpu) else None
        up = self._optional("uptime")
        row["uptime_s"] = float(up.split()[0]) if up else None
        row.update(P.parse_loadavg(self.fs.read("loadavg")))
        mi = P.parse_meminfo(self.fs.read("meminfo"))
        for col, key in (
            ("mem_total", "MemTotal"), ("mem_free", "MemFree"), ("mem_available", "MemAvailable"),
            ("buffers", "Buffers"), ("cached", "Cached"), ("shmem", "Shmem"),
            ("slab_reclaimable", "SReclaimable"), ("slab_unreclaimable", "SUnreclaim"),
            ("dirty", "Dirty"), ("writeback", "Writeback"), ("committed_as", "Committed_AS"),
            ("swap_total", "SwapTotal"), ("swap_free", "SwapFree"), ("swap_cached", "SwapCached"),
        ):
            row[col] = mi.get(key)
        vm = self._optional("vmstat")
        if vm:
            v = P.parse_vmstat(vm)
            for k in ("pgfault", "pgmajfault", "pswpin", "pswpout", "oom_kill"):
                row[k] = v.get(k)
        fnr = self._optional("sys/fs/file-nr")
        if fnr:
            f = fnr.split()
            row["file_handles"] = int(f[0])
            row["file_max"] = int(f[2])
        for res in ("cpu", "memory", "io"):
            data = self._optional("pressure", res)
            if not data:
                continue
            pr = P.parse_pressure(data)
            for kind in ("some", "full"):
                if kind in pr:
                    row[f"psi_{res}_{kind}_avg10"] = pr[kind].get("avg10")
                    row[f"psi_{res}_{kind}_total"] = pr[kind].get("total")
        row.update(self._net_counters())
        return [row]

    def _net_counters(self) -> dict:
        """The TCP/UDP stack counters of schema.NET_COUNTERS (a field or file the kernel does not
        have is left out: NULL)."""
        parsed: dict = {}
        for name in ("snmp", "netstat", "snmp6"):
            data = self._optional("net", name)
            try:
                parsed[name] = (P.parse_snmp6(data) if name == "snmp6" else P.parse_snmp(data)) if data else {}
            except ValueError:
                parsed[name] = {}
        out = {}
        for col, name, section, field, _ in NET_COUNTERS:
            v = parsed[name].get(field if section is None else (section, field))
            if v is not None:
                out[col] = v
        return out

    def _collect_disks(self, meta: dict, ps: dict) -> list[dict]:
        data = self._optional("diskstats")
        return P.parse_diskstats(data) if data else []

    def _collect_nics(self, meta: dict, ps: dict) -> list[dict]:
        data = self._optional("net/dev")
        return P.parse_net_dev(data) if data else []

    def _collect_filesystems(self, meta: dict, ps: dict) -> list[dict]:
        data = self._optional("self", "mountinfo")
        return self._filesystems.rows(data) if data else []

    # ------------------------------------------------------------------
    def _start_time(self, ticks: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.btime + ticks / CLK_TCK, UTC)

    def _collect_processes(self, meta: dict, ps: dict) -> list[dict]:
        rows = []
        gone = denied = 0
        threads: list[dict] = []
        tgone = tdenied = 0
        t_threads = t_files = 0.0
        want_threads = "threads" in self._pass_tables
        want_files = "open_files" in self._pass_tables
        files = FileRows(FILE_CHUNK, TABLES["open_files"].arrow_schema())
        for pid in self.fs.pids():
            try:
                row, fds = self._process(pid)
            except (Gone, ValueError):
                # Vanished mid-read, or a file that no longer parses (it was
                # torn down under us): skipped and counted, never a crash.
                gone += 1
                continue
            except Denied:
                # Not even stat/status are readable (hidepid): no row at all.
                denied += 1
                continue
            if want_threads:
                t = time.perf_counter()
                try:
                    t_rows, t_gone, t_denied = self._threads(
                        pid, (row["ctxsw_voluntary"], row["ctxsw_involuntary"]))
                except Gone:
                    gone += 1
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
                    gone += 1
                    files.drop(pid)
                    continue
                finally:
                    t_files += time.perf_counter() - t
            rows.append(row)
            if want_threads:  # only now: a process gone during its descriptors takes its threads along
                threads.extend(t_rows)
                tgone += t_gone
                tdenied += t_denied
            if row["denied"]:
                denied += 1
        meta["processes_gone"] = gone
        meta["processes_denied"] = denied
        # Thread and descriptor reads are interleaved with the process pass (so
        # each of their rows has its process row in the snapshot); their time
        # is moved from `processes` to their own tables (snapshot() adds each
        # table's own elapsed time to these).
        meta["ms_processes"] = -(t_threads + t_files) * 1000
        if want_threads:
            self._threads_rows = threads
            meta["threads_gone"] = tgone
            meta["threads_denied"] = tdenied
            meta["ms_threads"] = t_threads * 1000
        if want_files:
            meta["ms_open_files"] = t_files * 1000
            self._files_pass = files
        return rows

    def _collect_threads(self, meta: dict, ps: dict) -> list[dict]:
        # Gathered during the process pass so that every thread row has its
        # process row in the same snapshot.
        rows = getattr(self, "_threads_rows", [])
        self._threads_rows = []
        return rows

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

    def _process(self, pid: int) -> tuple[dict, list[str] | None]:
        want_names = "open_files" in self._pass_tables or "sockets" in self._pass_tables
        if self._fast and self.native is not None and pid != self._self_pid:
            # Everything below in one C call (recorder/source/_native.c: process_values) when nothing about
            # the process is unusual; anything else (a file gone, refused or odd) comes back None,
            # and the process is read here file by file, where each error gets its meaning.
            v = self.native.process_values(self.fs.path(pid), pid, self._fast_flags | (2 if want_names else 0))
            if v is not None:
                if not self._prlimit:
                    v = (*v[:38], *P.parse_limits_nofile(v[38]))
                return self._row(pid, v, None)
        fs = self.fs
        if self.native is not None:
            # One call reads them all, relative to /proc/PID (an int in place of bytes: the errno).
            names = _PROC_FILES_PRLIMIT if self._prlimit else _PROC_FILES
            got = dict(zip(names, self.native.read_files(fs.path(pid), names)))

            def read(pid_, name):
                v = got[name]
                if type(v) is int:
                    raise P._translate(OSError(v, os.strerror(v), fs.path(pid, name)))
                return v
        else:
            read = fs.read_one
        # C's parsers where it is built (recorder/source/_native.c gives what procfs's give, or None for
        # anything unusual, which procfs's parser then decides).
        nat = self.native
        raw = read(pid, "stat")
        st = (nat is not None and nat.stat_dict(raw)) or P.parse_stat(raw)
        raw = read(pid, "status")
        sv = nat.status_values(raw) if nat is not None else None
        if sv is None:
            status = P.parse_status(raw)
            ruid, euid = P.status_ids(status, b"Uid")
            _, egid = P.status_ids(status, b"Gid")
            sv = (ruid, euid, egid, P.status_kb(status, b"VmRSS"), P.status_kb(status, b"RssFile"),
                  P.status_kb(status, b"RssShmem"), P.status_kb(status, b"VmSwap"),
                  P.status_int(status, b"voluntary_ctxt_switches"), P.status_int(status, b"nonvoluntary_ctxt_switches"))
        denied: list[str] = []

        def optional(label: str, fn, *parts):
            try:
                return fn(pid, *parts)
            except Denied:
                denied.append(label)
                return None
            except Gone:
                # exe of kernel threads and zombies does not resolve; anything
                # else missing while the process still exists is just absent.
                if not fs.exists(pid, "stat"):
                    raise
                return None

        link = None
        if not (st["flags"] & P.PF_KTHREAD or st["state"] in ("Z", "X")):
            link = optional("exe", fs.readlink, "exe")
        cmd = optional("cmdline", read, "cmdline")
        io = optional("io", read, "io")
        if io is None:
            iod = {}
        elif nat is None or (iod := nat.io_dict(io)) is None:
            iod = P.parse_io(io)
        if want_names:
            fds = optional("fd", fs.listdir, "fd")
        else:  # only the count: one stat where the kernel gives it
            fds = optional("fd", fs.fd_count)
        limits = self._fd_limits(pid) if self._prlimit else None
        if limits is None:  # not live, or prlimit refused (another user's process, not root)
            lim = optional("limits", fs.read_one if self._prlimit else read, "limits")
            limits = P.parse_limits_nofile(lim) if lim is not None else (None, None)
        cg = optional("cgroup", read, "cgroup")
        if cg is not None:
            cg = (nat is not None and nat.cgroup_str(cg)) or P.parse_cgroup(cg)
        v = (st["ppid"], st["pgid"], st["sid"], st["starttime"], st["comm"], st["state"], st["nice"], st["priority"],
             st["processor"], st["num_threads"], st["utime"], st["stime"], st["rss"], st["vsize"], st["minflt"],
             st["majflt"], st["tty_nr"], st["flags"], *sv, link, cmd, *map(iod.get, _IO_KEYS), cg, fds, *limits)
        return self._row(pid, v, denied)

    def _row(self, pid: int, v: tuple, denied: list[str] | None) -> tuple[dict, list[str] | None]:
        """The processes row from _process's values (the layout of _native.process_values, limits
        as (soft, hard)), and the names of its descriptors when they were listed."""
        (ppid, pgid, sid, start, comm, state, nice, prio, cpu, nthreads, utime, stime, rss, vsize, minflt, majflt,
         tty_nr, _flags, ruid, euid, egid, vmrss, rss_file, rss_shmem, swap, vol, invol, link, cmd,
         rchar, wchar, syscr, syscw, read_bytes, write_bytes, cancelled, cgroup, fds, soft, hard) = v
        name, name_raw = P.split_text(comm)
        exe = exe_raw = None
        if link is not None:
            exe, exe_raw = P.split_text(link)
        # (Memoising command lines and start times across snapshots saved ~2.5 ms a snapshot at
        # 1000x50x4 but kept ~3 MB more resident: the memo's small objects, allocated among a
        # snapshot's rows, pinned Python's arenas after the rows were freed.)
        cmdline, cmdline_raw = self._cmdline(cmd) if cmd is not None else (None, None)
        if type(fds) is list:
            nfds = len(fds)
        else:
            nfds, fds = fds, None
        return {
            "boot_id": self.boot_id,
            "pid": pid,
            "ppid": ppid,
            "pgid": pgid,
            "sid": sid,
            "start_time": self._start_time(start),
            "name": name,
            "name_raw": name_raw,
            "exe": exe,
            "exe_raw": exe_raw,
            "cmdline": cmdline,
            "cmdline_raw": cmdline_raw,
            "state": state,
            "uid": euid,
            "user": self.user_name(euid),
            "ruid": ruid,
            "gid": egid,
            "nice": nice,
            "priority": prio,
            "processor": cpu,
            "num_threads": nthreads,
            "utime": utime / CLK_TCK,
            "stime": stime / CLK_TCK,
            # VmRSS is what ps and top show; stat's rss lags it on recent kernels.
            "rss": vmrss if vmrss is not None else rss * PAGE_SIZE,
            "vms": vsize,
            "shared": (rss_file or 0) + (rss_shmem or 0) if rss_file is not None else None,
            "swap": swap,
            "minflt": minflt,
            "majflt": majflt,
            "rchar": rchar,
            "wchar": wchar,
            "syscr": syscr,
            "syscw": syscw,
            "read_bytes": read_bytes,
            "write_bytes": write_bytes,
            "cancelled_write_bytes": cancelled,
            "ctxsw_voluntary": vol,
            "ctxsw_involuntary": invol,
            "num_fds": nfds,
            "fd_limit": soft,
            "fd_limit_hard": hard,
            "cgroup": cgroup,
            "tty": P.tty_name(tty_nr),
            "denied": ",".join(denied) if denied else None,
        }, fds

    def _cmdline(self, cmd: bytes) -> tuple[str, bytes | None]:
        """(cmdline, cmdline_raw) of the bytes of /proc/PID/cmdline, credentials redacted."""
        if self.redact:  # before the text and the raw bytes are both made from it
            cmd = redact_cmdline(cmd)
        argv, joined = P.parse_cmdline(cmd)
        cmdline, lossy = P.split_text(joined)
        # The joined text cannot give argv back when an argument holds a space or is empty: keep
        # the exact bytes then too.
        return cmdline, (cmd if lossy is not None or not P.joins_back(cmd, argv) else None)

    @staticmethod
    def _fd_limits(pid: int) -> tuple[int | None, int | None] | None:
        """RLIMIT_NOFILE (soft, hard) of a process, None for unlimited; None when not allowed
        or gone (the limits file is read then, and tells which)."""
        try:
            lims = resource.prlimit(pid, _RLIMIT_NOFILE)
        except (OSError, ValueError):
            return None
        return tuple(None if v == resource.RLIM_INFINITY or v < 0 else v for v in lims)

    def _threads(self, pid: int, leader: tuple | None = None) -> tuple[list[dict], int, int]:
        """The thread rows of PID, with the counts of threads gone and denied. LEADER: the
        (voluntary, involuntary) context switches of the process row, read from /proc/PID/status,
        which prints the leader thread's own counts (not the sum over threads): its thread's status
        is then not read again (1 file in 5 at 4 threads a process)."""
        fs = self.fs
        if self.native is not None:
            return self._threads_native(pid, leader)
        rows = []
        gone = denied = 0
        for tid_s in fs.listdir(pid, "task"):
            tid = int(tid_s)
            try:
                st = P.parse_stat(fs.read_one(pid, "task", tid, "stat"))
                if leader is not None and tid == pid:
                    vol, invol = leader
                else:
                    vol, invol = P.status_ctxsw(fs.read_one(pid, "task", tid, "status"))
            except (Gone, ValueError):
                gone += 1
                continue
            except Denied:
                denied += 1
                continue
            name, name_raw = P.split_text(st["comm"])
            rows.append({
                "boot_id": self.boot_id,
                "pid": pid,
                "tid": tid,
                "start_time": self._start_time(st["starttime"]),
                "name": name,
                "name_raw": name_raw,
                "state": st["state"],
                "nice": st["nice"],
                "priority": st["priority"],
                "processor": st["processor"],
                "utime": st["utime"] / CLK_TCK,
                "stime": st["stime"] / CLK_TCK,
                "minflt": st["minflt"],
                "majflt": st["majflt"],
                "ctxsw_voluntary": vol,
                "ctxsw_involuntary": invol,
            })
        return rows, gone, denied

    def _threads_native(self, pid: int, leader: tuple | None = None) -> tuple[list[dict], int, int]:
        """_threads with the reading and parsing in C (recorder/source/_native.c: thread_rows), which lists
        the task folder itself (None when it cannot open it: listed here then, to meet the error)."""
        path = self.fs.path(pid, "task")
        extra = () if leader is None else (pid, *leader)
        got = self.native.thread_rows(path, None, *extra)
        if got is None:
            got = self.native.thread_rows(path, self.fs.listdir(pid, "task"), *extra)
        parsed, gone, denied = got
        rows = []
        boot_id, btime, split = self.boot_id, self.btime, P.split_text
        fromts = dt.datetime.fromtimestamp
        for tid, comm, state, prio, nice, cpu, ut, st, minflt, majflt, start, vol, invol in parsed:
            name, name_raw = split(comm)
            rows.append({
                "boot_id": boot_id,
                "pid": pid,
                "tid": tid,
                "start_time": fromts(btime + start / CLK_TCK, UTC),
                "name": name,
                "name_raw": name_raw,
                "state": state,
                "nice": nice,
                "priority": prio,
                "processor": cpu,
                "utime": ut / CLK_TCK,
                "stime": st / CLK_TCK,
                "minflt": minflt,
                "majflt": majflt,
                "ctxsw_voluntary": vol,
                "ctxsw_involuntary": invol,
            })
        return rows, gone, denied
