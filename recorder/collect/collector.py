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
import time
TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (3 ms of a snapshot's start)

from recorder import __version__
from recorder.source import procfs as P
from recorder.collect import descriptors
from recorder.collect.descriptors import FileRows, MapsCache, to_arrow
from recorder.source.procfs import Denied, Gone, ProcFS
from recorder.store.write import Columns
from recorder.source.native import native as _native
from recorder.redact import redact_cmdline
from recorder.collect.filesystems import FilesystemReader
from recorder.schema import COLLECTED, COUNTED, CPU_MODES, NET_COUNTERS, TABLES

if TYPE_CHECKING:
    import pyarrow as pa

UTC = dt.timezone.utc
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# What _process reads of /proc/PID, in one call when the C module is there.
_PROC_FILES = ("stat", "status", "cmdline", "io", "limits", "cgroup")
# On the live /proc the descriptor limit comes from prlimit(2): the same numbers as the limits
# file (task->signal->rlim), one call in place of open, read and close of 16 formatted lines.
_PROC_FILES_PRLIMIT = ("stat", "status", "cmdline", "io", "cgroup")
_RLIMIT_NOFILE = getattr(resource, "RLIMIT_NOFILE", None)
# The io lines a processes row keeps, in _native.process_values' order.
_IO_KEYS = ("rchar", "wchar", "syscr", "syscw", "read_bytes", "write_bytes", "cancelled_write_bytes")


class Snapshot:
    """One snapshot: its identity and one table per schema table: an Arrow table, or the Python
    columns of recorder.store.write (a collector made with arrow=False).

    Tables hold the stored columns only; ``host`` and ``date`` are partition
    values carried here and in the folder names.
    """

    __slots__ = ("snapshot_id", "ts", "host", "tables")

    def __init__(self, snapshot_id: int, ts: dt.datetime, host: str, tables: dict | None = None):
        self.snapshot_id = snapshot_id
        self.ts = ts
        self.host = host
        self.tables: dict[str, pa.Table | Columns] = {} if tables is None else tables

    @property
    def date(self) -> dt.date:
        return self.ts.date()


def _to_table(name: str, rows, common: dict, n: int | None = None) -> pa.Table:
    """An Arrow table of the schema's stored columns from rows (dicts) or columns (a dict of
    lists, as FileRows gives them; N rows, by default the first column's length); a column in
    common has one value for every row."""
    import pyarrow as pa
    schema = TABLES[name].arrow_schema()
    if isinstance(rows, dict):
        columns = rows
        if n is None:
            n = len(next(iter(columns.values()))) if columns else 0
    else:
        # Arrow reads the dicts itself (a missing key is a null): 2.5 x faster than a list per
        # column built here, 25 ms of a 1000-process snapshot's processes and threads.
        columns = pa.Table.from_pylist(rows, schema=pa.schema([f for f in schema if f.name not in common]))
        n = len(rows)
    cols = []
    for f in schema:
        if f.name in common:
            cols.append(pa.repeat(pa.scalar(common[f.name], f.type), n))
        elif isinstance(columns, dict):
            v = columns.get(f.name)
            cols.append(to_arrow(v, f.type) if v is not None else pa.nulls(n, f.type))
        else:
            cols.append(columns.column(f.name))
    return pa.Table.from_arrays(cols, schema=schema)


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
                 tables: tuple[str, ...] = COLLECTED, interval: float | None = None, redact: bool = True,
                 arrow: bool | str = True):
        self.fs = procfs or ProcFS()
        # The C loops read files the way ProcFS does; a ProcFS subclass that reads otherwise (the
        # tests' fault injection) gets the Python loops, which go through its methods.
        self.native = _native if type(self.fs) is ProcFS else None
        self._prlimit = (type(self.fs) is ProcFS and self.fs.root == "/proc" and hasattr(resource, "prlimit")
                         and _RLIMIT_NOFILE is not None)
        self.redact = redact  # credentials in command lines (recorder/redact.py)
        # What a snapshot's tables are: True, Arrow tables (what the recorder, `procsnap snapshot`
        # and the analyzer's live views use); False, recorder.store.write.Columns, Python columns the
        # store turns into Arrow when it writes them; "open_files": a snapshot that reads
        # descriptors is Arrow, any other is Columns.
        if arrow not in (True, False, "open_files"):
            raise ValueError(f"arrow: True, False or 'open_files', not {arrow!r}")
        self.arrow = arrow
        self.host = host or os.uname().nodename  # socket.gethostname(), without importing socket
        self.tables = needed_tables(tables)
        self._pass_tables, self._pass_arrow = self.tables, bool(arrow)  # what _snapshot sets per pass
        self.interval = interval
        self.kernel = os.uname().release
        self._users: dict[int, str] = {}
        self._filesystems = FilesystemReader()
        self.boot_id = self._boot_id()
        self.skipped = 0  # set by the record loop before each snapshot
        self.next_files_in: float | None = None  # seconds to the next descriptor snapshot, when known
        self.maps = MapsCache()
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
        arrow = self.arrow is True or (self.arrow == "open_files" and bool({"open_files", "sockets"} & set(tables)))
        if arrow:
            use_one_allocator()
        make = _to_table if arrow else Columns.of
        self._pass_tables, self._pass_arrow = tables, arrow
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
                snap.tables[name] = (rows.to_table(TABLES[name].arrow_schema(), with_boot) if arrow
                                     else rows.to_columns(name, with_boot))
            elif isinstance(rows, dict):  # columns (sockets)
                snap.tables[name] = make(name, rows, {**common, "boot_id": self.boot_id})
            else:
                snap.tables[name] = make(name, rows, common)
            meta[f"ms_{name}"] = meta.get(f"ms_{name}", 0.0) + (time.perf_counter() - t) * 1000
        for name in COUNTED:
            if name in tables:
                meta[f"{name}_seen"] = snap.tables[name].num_rows
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        meta["duration_ms"] = (time.perf_counter() - t0) * 1000
        meta["cpu_ms"] = ((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)) * 1000
        meta["recorder_rss"] = self._self_rss()
        snap.tables["snapshots"] = make("snapshots", [meta], common)
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
        """(process rows, descriptor rows, socket columns) of these pids or of every process
        (recorder/collect/descriptors.py: live_files)."""
        self.btime = P.parse_proc_stat(self.fs.read("stat"))["btime"]
        return descriptors.live_files(self.fs, self.native, self.maps, pids,
                                      self._process_light if sockets_only else self._process, sockets_only)

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
        files = descriptors.new_rows(self.fs, self._pass_arrow)
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
                    row["denied"] = descriptors.process_files(self.fs, self.native, self.maps, pid, row["start_time"],
                                                              fds, row["denied"], files, self.next_files_in)
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
        done = descriptors.finish(self.fs, self.native, getattr(self, "_files_pass", None), self.maps,
                                  "sockets" in self._pass_tables, self.next_files_in)
        meta["open_files_gone"], meta["open_files_denied"] = done.gone, done.denied
        self._sockets_pass, self._files_pass = done.sockets, None
        return done.files

    def _collect_sockets(self, meta: dict, ps: dict) -> dict[str, list]:
        done, self._sockets_pass = getattr(self, "_sockets_pass", None) or descriptors.no_sockets(), None
        meta["sockets_gone"], meta["sockets_denied"] = 0, done.denied
        return done.columns

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
