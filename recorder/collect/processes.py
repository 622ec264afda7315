"""The processes table: one row per process.

Read by the C module (recorder/source/_native.c) where it is built: ``process()`` reads and parses
a process's files in one call, and where anything is unusual the process is read file by file
here, each file parsed by the same C parsers and each error given its meaning by
procfs.translate. Without the C module (no compiler, or PROCSNAP_NATIVE=0) psutil reads the
processes; the columns psutil does not give are NULL (:data:`PSUTIL_NULL`).
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import resource

from recorder.redact import redact_cmdline
from recorder.source import procfs as P
from recorder.source.procfs import Denied, Gone, ProcFS

UTC = dt.timezone.utc
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_RLIMIT_NOFILE = getattr(resource, "RLIMIT_NOFILE", None)

# The processes columns psutil does not give: NULL when psutil reads the processes. (pgid and sid
# come from getpgid(2) and getsid(2) then, on the live /proc.)
PSUTIL_NULL = ("priority", "swap", "minflt", "majflt", "cancelled_write_bytes", "cgroup")


def start_time(btime: int, ticks: int) -> dt.datetime:
    """A process's or thread's start (stat's starttime, in clock ticks after boot) as a UTC time."""
    return dt.datetime.fromtimestamp(btime + ticks / CLK_TCK, UTC)


class UserNames:
    """User names by uid, looked up once each (the uid itself where it has no name)."""

    def __init__(self):
        self._names: dict[int, str] = {}

    def __call__(self, uid: int) -> str:
        name = self._names.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self._names[uid] = name
        return name


def cmdline_columns(cmd: bytes, redact: bool) -> tuple[str, bytes | None]:
    """(cmdline, cmdline_raw) of the bytes of /proc/PID/cmdline, credentials redacted when asked."""
    if redact:  # before the text and the raw bytes are both made from it
        cmd = redact_cmdline(cmd)
    argv, joined = P.parse_cmdline(cmd)
    cmdline, lossy = P.split_text(joined)
    # The joined text cannot give argv back when an argument holds a space or is empty: keep
    # the exact bytes then too.
    return cmdline, (cmd if lossy is not None or not P.joins_back(cmd, argv) else None)


def psutil_error(e: BaseException) -> BaseException:
    """What an error met in psutil means (procfs.translate): Gone, Denied, a real OSError, or a
    file psutil could not parse, which is malformed content (ValueError) as for the C parsers."""
    t = P.translate(e)
    if t is e and not isinstance(e, OSError):
        return ValueError(f"psutil: {type(e).__name__}: {e}")
    return t


def fd_limits(pid: int) -> tuple[int | None, int | None] | None:
    """RLIMIT_NOFILE (soft, hard) of a live process, None for unlimited; None when not allowed or
    gone (the limits file is read then, and tells which)."""
    try:
        lims = resource.prlimit(pid, _RLIMIT_NOFILE)
    except (OSError, ValueError):
        return None
    return tuple(None if v == resource.RLIM_INFINITY or v < 0 else v for v in lims)


def tty_of(pid: int) -> str | None:
    """The controlling terminal of a live process as ps names it (pts/3); None for none, or where
    the process is gone or unreadable."""
    from recorder.source.native import native
    try:
        if native is not None:
            return P.tty_name(native.parse_stat(ProcFS().read_one(pid, "stat")).tty_nr)
        import psutil
        tty = psutil.Process(pid).terminal()
    except Exception as e:
        if isinstance(psutil_error(e), OSError):  # a real error, neither gone, denied nor malformed
            raise
        return None
    return tty[5:] if tty and tty.startswith("/dev/") else tty


class ProcessReader:
    """Reads the processes rows of one /proc (see the module's docstring for how)."""

    def __init__(self, fs: ProcFS, native, users: UserNames, boot_id: str | None, redact: bool = True):
        self.fs = fs
        self.native = native
        self.users = users
        self.boot_id = boot_id
        self.redact = redact
        live = type(fs) is ProcFS and fs.root == "/proc"
        # On the live /proc the descriptor limit comes from prlimit(2): the same numbers as the
        # limits file, one call in place of reading and parsing it.
        self.prlimit = live and hasattr(resource, "prlimit") and _RLIMIT_NOFILE is not None
        # process() reads files as ProcFS does; a ProcFS subclass that reads otherwise (the tests'
        # fault injection) is read file by file, through its methods.
        self.one_call = native is not None and type(fs) is ProcFS
        self.count_by_size = self.one_call and fs.stat_counts_fds()
        # Our own pid as this /proc numbers it: read file by file, as process() would count the
        # descriptors it holds among its own (it refuses its getpid() too).
        try:
            self.self_pid = int(os.readlink(fs.path("self")))
        except (OSError, ValueError):
            self.self_pid = None
        self._psutil = None
        if native is None:
            import psutil
            psutil.PROCFS_PATH = fs.root
            self._psutil = psutil
        # (cmdline, cmdline_raw) by the command line's bytes, worked out once per distinct command
        # line of a pass (processes share theirs: workers, threads of a pool); forget() empties
        # it after each pass, so that it never holds more than the pass's rows do.
        self._cmdlines: dict[bytes, tuple[str, bytes | None]] = {}

    def forget(self) -> None:
        """Drop what was kept while reading one pass over the processes."""
        self._cmdlines.clear()

    def read(self, pid: int, btime: int, want_names: bool) -> tuple[dict, list[str] | None]:
        """(row, the names of its descriptors when WANT_NAMES and they could be listed). Raises
        Gone (or ValueError: a file that does not parse) or Denied (not even stat or status)."""
        if self._psutil is not None:
            return self._read_psutil(pid, btime, want_names)
        if self.one_call and pid != self.self_pid:
            v = self.native.process(self.fs.path(pid), pid, want_names, self.prlimit, self.count_by_size)
            if v is not None:
                limits = (v.fd_limit, v.fd_limit_hard) if self.prlimit else P.parse_limits_nofile(v.limits)
                return self._row(pid, btime, v.stat, v.status, v.exe, v.cmdline, v.io, v.cgroup, v.num_fds,
                                 limits, None), v.fd_names
        return self._read_files(pid, btime, want_names)

    def identity(self, pid: int, btime: int) -> dict:
        """What lsof shows of a process: pid, start_time, name, uid and user (and no denial)."""
        if self._psutil is not None:
            try:
                p = self._psutil.Process(pid)
                with p.oneshot():
                    comm, started, euid = os.fsencode(p.name()), p.create_time(), p.uids()[1]
            except Exception as e:
                raise psutil_error(e) from None
            started = dt.datetime.fromtimestamp(started, UTC)
        else:
            st = self.native.parse_stat(self.fs.read_one(pid, "stat"))
            euid = self.native.parse_status(self.fs.read_one(pid, "status")).euid
            comm, started = st.comm, start_time(btime, st.starttime)
        name, name_raw = P.split_text(comm)
        return {"pid": pid, "start_time": started, "name": name, "name_raw": name_raw, "uid": euid,
                "user": self.users(euid), "denied": None}

    def _read_files(self, pid: int, btime: int, want_names: bool) -> tuple[dict, list[str] | None]:
        """read(), a file at a time: where process() met anything unusual, or the tree is not
        read as ProcFS reads it."""
        fs, nat = self.fs, self.native
        stat = nat.parse_stat(fs.read_one(pid, "stat"))
        status = nat.parse_status(fs.read_one(pid, "status"))
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
        if not (stat.flags & P.PF_KTHREAD or stat.state in ("Z", "X")):
            link = optional("exe", fs.readlink, "exe")
        cmd = optional("cmdline", fs.read_one, "cmdline")
        io = optional("io", fs.read_one, "io")
        if io is not None:
            io = nat.parse_io(io)
        fds = None
        if want_names:
            fds = optional("fd", fs.listdir, "fd")
            nfds = len(fds) if fds is not None else None
        else:  # only the count: one stat where the kernel gives it
            nfds = optional("fd", fs.fd_count)
        limits = fd_limits(pid) if self.prlimit else None
        if limits is None:  # not live, or prlimit refused (another user's process, not root)
            lim = optional("limits", fs.read_one, "limits")
            limits = P.parse_limits_nofile(lim) if lim is not None else (None, None)
        cg = optional("cgroup", fs.read_one, "cgroup")
        if cg is not None:
            cg = nat.parse_cgroup(cg)
        return self._row(pid, btime, stat, status, link, cmd, io, cg, nfds, limits, denied), fds

    def _row(self, pid: int, btime: int, st, status, link, cmd, io, cgroup, nfds, limits, denied) -> dict:
        """The processes row from the C parsers' Stat, Status and IO (io None: not read)."""
        name, name_raw = P.split_text(st.comm)
        exe = exe_raw = None
        if link is not None:
            exe, exe_raw = P.split_text(link)
        cmdline = cmdline_raw = None
        if cmd is not None:
            got = self._cmdlines.get(cmd)
            if got is None:
                got = self._cmdlines[cmd] = cmdline_columns(cmd, self.redact)
            cmdline, cmdline_raw = got
        rss_file = status.rss_file
        return {
            "boot_id": self.boot_id,
            "pid": pid,
            "ppid": st.ppid,
            "pgid": st.pgid,
            "sid": st.sid,
            "start_time": start_time(btime, st.starttime),
            "name": name,
            "name_raw": name_raw,
            "exe": exe,
            "exe_raw": exe_raw,
            "cmdline": cmdline,
            "cmdline_raw": cmdline_raw,
            "state": st.state,
            "uid": status.euid,
            "user": self.users(status.euid),
            "ruid": status.ruid,
            "gid": status.egid,
            "nice": st.nice,
            "priority": st.priority,
            "processor": st.processor,
            "num_threads": st.num_threads,
            "utime": st.utime / CLK_TCK,
            "stime": st.stime / CLK_TCK,
            # VmRSS is what ps and top show; stat's rss lags it on recent kernels.
            "rss": status.vm_rss if status.vm_rss is not None else st.rss * PAGE_SIZE,
            "vms": st.vsize,
            "shared": (rss_file or 0) + (status.rss_shmem or 0) if rss_file is not None else None,
            "swap": status.vm_swap,
            "minflt": st.minflt,
            "majflt": st.majflt,
            "rchar": io.rchar if io is not None else None,
            "wchar": io.wchar if io is not None else None,
            "syscr": io.syscr if io is not None else None,
            "syscw": io.syscw if io is not None else None,
            "read_bytes": io.read_bytes if io is not None else None,
            "write_bytes": io.write_bytes if io is not None else None,
            "cancelled_write_bytes": io.cancelled_write_bytes if io is not None else None,
            "ctxsw_voluntary": status.ctxsw_voluntary,
            "ctxsw_involuntary": status.ctxsw_involuntary,
            "num_fds": nfds,
            "fd_limit": limits[0],
            "fd_limit_hard": limits[1],
            "cgroup": cgroup,
            "tty": P.tty_name(st.tty_nr),
            "denied": ",".join(denied) if denied else None,
        }

    # ------------------------------------------------------------------
    def _read_psutil(self, pid: int, btime: int, want_names: bool) -> tuple[dict, list[str] | None]:
        """read() through psutil: the columns of PSUTIL_NULL are NULL."""
        psutil = self._psutil
        denied: list[str] = []

        def optional(label, fn, *args):
            try:
                return fn(*args)
            except psutil.AccessDenied:
                denied.append(label)
                return None
            except psutil.ZombieProcess:
                return None

        try:
            p = psutil.Process(pid)
            with p.oneshot():
                # what stat and status give: without them no row (gone or denied)
                comm = os.fsencode(p.name())
                state = STATE_LETTER.get(p.status(), "?")
                ppid = p.ppid()
                started = dt.datetime.fromtimestamp(p.create_time(), UTC)
                cpu = p.cpu_times()
                mem = p.memory_info()
                ruid, euid, _ = p.uids()
                _, egid, _ = p.gids()
                vol, invol = p.num_ctx_switches()
                live = self.fs.root == "/proc"  # getpriority and getpgid ask the running kernel
                nice = p.nice() if live else None
                nthreads, processor = p.num_threads(), p.cpu_num()
                tty = p.terminal()
                link = optional("exe", p.exe) if state not in ("Z", "X") else None
                argv = optional("cmdline", p.cmdline)
                io = optional("io", p.io_counters)
                nfds = optional("fd", p.num_fds)
                lims = optional("limits", p.rlimit, psutil.RLIMIT_NOFILE)
                pgid = sid = None
                if live:
                    pgid, sid = os.getpgid(pid), os.getsid(pid)
        except Exception as e:
            raise psutil_error(e) from None
        fds = None
        if want_names and nfds is not None:
            try:
                fds = self.fs.listdir(pid, "fd")
                nfds = len(fds)
            except Denied:
                denied.append("fd")
                nfds = None
        name, name_raw = P.split_text(comm)
        exe = exe_raw = None
        if link:  # "" for a kernel thread
            exe, exe_raw = P.split_text(os.fsencode(link))
        cmdline = cmdline_raw = None
        if argv is not None:
            cmdline, cmdline_raw = cmdline_columns(b"".join(os.fsencode(a) + b"\0" for a in argv), self.redact)
        unlimited = psutil.RLIM_INFINITY
        return {
            **dict.fromkeys(PSUTIL_NULL),
            "boot_id": self.boot_id,
            "pid": pid,
            "ppid": ppid,
            "pgid": pgid,
            "sid": sid,
            "start_time": started,
            "name": name,
            "name_raw": name_raw,
            "exe": exe,
            "exe_raw": exe_raw,
            "cmdline": cmdline,
            "cmdline_raw": cmdline_raw,
            "state": state,
            "uid": euid,
            "user": self.users(euid),
            "ruid": ruid,
            "gid": egid,
            "nice": nice,
            "processor": processor,
            "num_threads": nthreads,
            "utime": cpu.user,
            "stime": cpu.system,
            "rss": mem.rss,
            "vms": mem.vms,
            "shared": mem.shared,
            "rchar": io.read_chars if io is not None else None,
            "wchar": io.write_chars if io is not None else None,
            "syscr": io.read_count if io is not None else None,
            "syscw": io.write_count if io is not None else None,
            "read_bytes": io.read_bytes if io is not None else None,
            "write_bytes": io.write_bytes if io is not None else None,
            "ctxsw_voluntary": vol,
            "ctxsw_involuntary": invol,
            "num_fds": nfds,
            "fd_limit": None if lims is None or lims[0] == unlimited else lims[0],
            "fd_limit_hard": None if lims is None or lims[1] == unlimited else lims[1],
            "tty": tty[5:] if tty and tty.startswith("/dev/") else tty,
            "denied": ",".join(denied) if denied else None,
        }, fds


# psutil's status names back to the letters of stat's state field (ps's STAT).
STATE_LETTER = {
    "running": "R", "sleeping": "S", "disk-sleep": "D", "stopped": "T", "tracing-stop": "t", "zombie": "Z",
    "dead": "X", "wake-kill": "K", "waking": "W", "parked": "P", "idle": "I",
}
