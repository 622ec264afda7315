"""A fake /proc tree for tests, in real kernel formats.

Usage::

    fake = FakeProc(tmp_path / "proc")          # host files with defaults
    fake.add_process(pid=1, comm=b"systemd", ppid=0, cmdline=b"/sbin/init\\0")
    fake.add_process(pid=7, comm=b"worker", threads=[7, {"tid": 8, "comm": b"w-io"}])
    collector = Collector(procfs=ProcFS(str(fake.root)), host="fakehost")

Every file is written in the exact shape the kernel gives it (field order,
tabs vs. spaces, trailing newlines), copied from a live 6.x kernel. Values
that sit next to a parsed field (cminflt, cutime, wchan, exit_signal, ...) get
distinct non-zero defaults, so a parser that is off by one field is caught.

:class:`FaultyProcFS` injects what a root-run test cannot produce with file
modes: permission denials, and files or processes that vanish mid-read.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Iterable

from recorder.source.procfs import PF_KTHREAD, Denied, Gone, ProcFS

# --------------------------------------------------------------------------
# Host defaults (what FakeProc writes unless told otherwise)

BTIME = 1795827002
BOOT_ID = "67d3597d-4894-4dbc-be96-e01abb2ac9a6"
# user nice system idle iowait irq softirq steal guest guest_nice (ticks)
CPU_TOTAL = (4875, 13, 2339, 319071, 262, 7, 48, 715, 3, 1)
PER_CPU = (
    (1105, 5, 839, 161380, 15, 3, 8, 338, 1, 0),
    (3770, 8, 1500, 157691, 247, 4, 40, 377, 2, 1),
)
UPTIME = b"1638.12 3190.71\n"
LOADAVG = b"0.07 0.05 0.01 2/84 3629\n"
MEMINFO_KB = {
    "MemTotal": 24684092, "MemFree": 24174188, "MemAvailable": 24383488,
    "Buffers": 1648, "Cached": 410052, "SwapCached": 12, "Active": 136416,
    "Inactive": 271700, "Active(anon)": 1520, "Inactive(anon)": 3752,
    "Active(file)": 134896, "Inactive(file)": 267948, "Unevictable": 12504,
    "Mlocked": 11544, "SwapTotal": 2097148, "SwapFree": 2097000, "Zswap": 0,
    "Zswapped": 0, "Dirty": 140, "Writeback": 4, "AnonPages": 8964,
    "Mapped": 10832, "Shmem": 8856, "KReclaimable": 21916, "Slab": 41976,
    "SReclaimable": 21916, "SUnreclaim": 20060, "KernelStack": 1364,
    "PageTables": 1800, "SecPageTables": 0, "NFS_Unstable": 0, "Bounce": 0,
    "WritebackTmp": 0, "CommitLimit": 12342044, "Committed_AS": 56684,
    "VmallocTotal": 34359738367, "VmallocUsed": 14220, "VmallocChunk": 0,
    "Percpu": 688, "AnonHugePages": 0, "ShmemHugePages": 0,
    "ShmemPmdMapped": 0, "FileHugePages": 0, "FilePmdMapped": 0,
}
MEMINFO_COUNTS = {"HugePages_Total": 0, "HugePages_Free": 0, "HugePages_Rsvd": 0, "HugePages_Surp": 0}
MEMINFO_KB_TAIL = {"Hugepagesize": 2048, "Hugetlb": 0, "DirectMap4k": 32768,
                   "DirectMap2M": 2064384, "DirectMap1G": 25165824}
VMSTAT = {
    "nr_free_pages": 6043547, "nr_zone_inactive_anon": 938, "nr_dirty": 35,
    "pgpgin": 1180893, "pgpgout": 445688, "pswpin": 17, "pswpout": 23,
    "pgalloc_normal": 1392233, "pgfree": 7438912, "pgfault": 3303520,
    "pgmajfault": 1754, "pgrefill": 0, "oom_kill": 2, "numa_hit": 2013411,
}
FILE_NR = b"379\t0\t2466186\n"
PRESSURE = {
    "cpu": b"some avg10=1.51 avg60=0.37 avg300=0.08 total=5147597\n"
           b"full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    "memory": b"some avg10=0.00 avg60=0.25 avg300=0.14 total=2289703\n"
              b"full avg10=0.20 avg60=0.24 avg300=0.14 total=2144563\n",
    "io": b"some avg10=3.25 avg60=1.00 avg300=0.50 total=987654\n"
          b"full avg10=2.75 avg60=0.90 avg300=0.40 total=876543\n",
}
DISKSTATS = (
    b"   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    b" 254       0 vda 11744 5990 2361786 11401 1680 9402 891376 2503 1 3776 14477 3199 42 39456 566 93 6\n"
    b" 254       1 vda1 11020 5800 2300000 11000 1600 9300 880000 2400 0 3600 14000 0 0 0 0 0 0\n"
    b" 259       0 nvme0n1 12 0 96 3 0 0 0 0 0 4 3\n"
)
NET_DEV = (
    b"Inter-|   Receive                                                |  Transmit\n"
    b" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
    b"    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0\n"
    b"  eth0: 112567585    2356    3    4    5     6          7         8   104284    1113    9   10   11    12      13         14\n"
    b"wlan0:1234567890123  99    1    2    0     0          0        77 42      1    0    0    0     0       0          0\n"
)

CGROUP_V2 = b"0::/system.slice/x.service\n"
CGROUP_HYBRID = (
    b"9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n"
    b"4:memory:/process_api/b45658a8cfaf9b09ff6631288e51bd99\n"
    b"3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n"
)

_UNSET = object()


# --------------------------------------------------------------------------
# File builders (pure functions: usable on their own in parser tests)


def stat_line(pid: int, comm: bytes = b"x", state: str = "S", *, ppid: int = 1,
              pgid: int | None = None, sid: int | None = None, tty_nr: int = 0,
              tpgid: int = -1, flags: int = 4194560, minflt: int = 1392,
              cminflt: int = 27841, majflt: int = 12, cmajflt: int = 31,
              utime: int = 7, stime: int = 3, cutime: int = 45, cstime: int = 18,
              priority: int = 20, nice: int = 0, num_threads: int = 1,
              starttime: int = 1432, vsize: int = 15433728, rss: int = 2245,
              processor: int = 3, fields: int = 52) -> bytes:
    """One /proc/PID/stat line (52 fields, as since Linux 3.5; ``fields`` cuts it)."""
    pgid = pid if pgid is None else pgid
    sid = pid if sid is None else sid
    mm = vsize != 0  # kernel threads and zombies show 0 for every mm field
    a = lambda v: v if mm else 0  # noqa: E731
    rest = [
        state, ppid, pgid, sid, tty_nr, tpgid, flags, minflt, cminflt, majflt, cmajflt,
        utime, stime, cutime, cstime, priority, nice, num_threads, 0, starttime,
        vsize, rss, 18446744073709551615,
        a(94571220418560), a(94571221321253), a(140736246318256),  # startcode endcode startstack
        0, 0, 0, 0, 4096, 81925,  # kstkesp kstkeip signal blocked sigignore sigcatch
        1, 0, 0, 17,  # wchan nswap cnswap exit_signal
        processor, 0, 0, 5, 0, 0,  # rt_priority policy blkio_ticks guest cguest
        a(94571221537296), a(94571221583088), a(94571239337984),  # start_data end_data start_brk
        a(140736246325047), a(140736246325070), a(140736246325070), a(140736246325221),
        0,  # exit_code
    ]
    rest = rest[: fields - 2]
    return b"%d (%s) %s\n" % (pid, comm, " ".join(str(v) for v in rest).encode())


def status_text(pid: int, comm: bytes = b"x", state: str = "S", *, tgid: int | None = None,
                ppid: int = 1, uid: int | tuple = 0, gid: int | tuple = 0,
                threads: int = 1, kthread: bool = False, zombie: bool = False,
                vm_rss_kb: int = 8980, rss_anon_kb: int = 1564, rss_file_kb: int = 7400,
                rss_shmem_kb: int = 16, vm_swap_kb: int = 0,
                voluntary: int = 1234, nonvoluntary: int = 56) -> bytes:
    """/proc/PID/status. ``uid``/``gid``: one id for all four, or (real, effective, saved, fs)."""
    tgid = pid if tgid is None else tgid
    uids = (uid,) * 4 if isinstance(uid, int) else tuple(uid)
    gids = (gid,) * 4 if isinstance(gid, int) else tuple(gid)
    states = {"R": "R (running)", "S": "S (sleeping)", "D": "D (disk sleep)", "Z": "Z (zombie)",
              "T": "T (stopped)", "t": "t (tracing stop)", "X": "X (dead)", "I": "I (idle)"}
    name = comm.replace(b"\\", b"\\\\").replace(b"\n", b"\\n")  # as the kernel escapes it
    L = [b"Name:\t" + name]
    if not zombie:
        L.append(b"Umask:\t0022")
    L += [
        b"State:\t" + states.get(state, state).encode(),
        b"Tgid:\t%d" % tgid, b"Ngid:\t0", b"Pid:\t%d" % pid, b"PPid:\t%d" % ppid,
        b"TracerPid:\t0",
        b"Uid:\t" + b"\t".join(b"%d" % u for u in uids),
        b"Gid:\t" + b"\t".join(b"%d" % g for g in gids),
        b"FDSize:\t%d" % (0 if zombie else 256), b"Groups:\t ",
        b"NStgid:\t%d" % tgid, b"NSpid:\t%d" % pid, b"NSpgid:\t%d" % tgid, b"NSsid:\t%d" % tgid,
        b"Kthread:\t%d" % int(kthread),
    ]
    if not (kthread or zombie):
        kb = lambda k, v: b"%s:\t%8d kB" % (k, v)  # noqa: E731
        L += [
            kb(b"VmPeak", 15072), kb(b"VmSize", 15072), kb(b"VmLck", 0), kb(b"VmPin", 0),
            kb(b"VmHWM", vm_rss_kb), kb(b"VmRSS", vm_rss_kb), kb(b"RssAnon", rss_anon_kb),
            kb(b"RssFile", rss_file_kb), kb(b"RssShmem", rss_shmem_kb), kb(b"VmData", 360),
            kb(b"VmStk", 132), kb(b"VmExe", 20), kb(b"VmLib", 1528), kb(b"VmPTE", 48),
            kb(b"VmSwap", vm_swap_kb), kb(b"HugetlbPages", 0), b"CoreDumping:\t0",
            b"THP_enabled:\t1", b"untag_mask:\t0xffffffffffffffff",
        ]
    L += [
        b"Threads:\t%d" % threads, b"SigQ:\t0/96365",
        b"SigPnd:\t0000000000000000", b"ShdPnd:\t0000000000000000",
        b"SigBlk:\t0000000000000000", b"SigIgn:\t0000000000000000", b"SigCgt:\t0000000000000000",
        b"CapInh:\t0000000000000000", b"CapPrm:\t000001fffeffffff", b"CapEff:\t000001fffeffffff",
        b"CapBnd:\t000001fffeffffff", b"CapAmb:\t0000000000000000", b"NoNewPrivs:\t0",
        b"Seccomp:\t0", b"Seccomp_filters:\t0",
        b"Speculation_Store_Bypass:\tvulnerable", b"SpeculationIndirectBranch:\talways enabled",
        b"Cpus_allowed:\t3", b"Cpus_allowed_list:\t0-1",
        b"Mems_allowed:\t00000000,00000001", b"Mems_allowed_list:\t0",
        b"voluntary_ctxt_switches:\t%d" % voluntary,
        b"nonvoluntary_ctxt_switches:\t%d" % nonvoluntary,
    ]
    return b"\n".join(L) + b"\n"


IO_DEFAULT = {"rchar": 8379, "wchar": 1403, "syscr": 12, "syscw": 1,
              "read_bytes": 4096, "write_bytes": 8192, "cancelled_write_bytes": 512}


def io_text(**values: int) -> bytes:
    v = dict(IO_DEFAULT, **values)
    return b"".join(b"%s: %d\n" % (k.encode(), v[k]) for k in IO_DEFAULT)


def limits_text(nofile_soft: int | None = 1024, nofile_hard: int | None = 524288) -> bytes:
    """/proc/PID/limits; None means 'unlimited'."""
    def v(x):
        return "unlimited" if x is None else str(x)
    rows = [
        ("Max cpu time", "unlimited", "unlimited", "seconds"),
        ("Max file size", "unlimited", "unlimited", "bytes"),
        ("Max data size", "unlimited", "unlimited", "bytes"),
        ("Max stack size", "8388608", "unlimited", "bytes"),
        ("Max core file size", "0", "unlimited", "bytes"),
        ("Max resident set", "unlimited", "unlimited", "bytes"),
        ("Max processes", "96365", "96365", "processes"),
        ("Max open files", v(nofile_soft), v(nofile_hard), "files"),
        ("Max locked memory", "8388608", "8388608", "bytes"),
        ("Max address space", "unlimited", "unlimited", "bytes"),
        ("Max file locks", "unlimited", "unlimited", "locks"),
        ("Max pending signals", "96365", "96365", "signals"),
        ("Max msgqueue size", "819200", "819200", "bytes"),
        ("Max nice priority", "0", "0", ""),
        ("Max realtime priority", "0", "0", ""),
        ("Max realtime timeout", "unlimited", "unlimited", "us"),
    ]
    out = "%-25s %-20s %-20s %-10s\n" % ("Limit", "Soft Limit", "Hard Limit", "Units")
    out += "".join("%-25s %-20s %-20s %-10s\n" % r for r in rows)
    return out.encode()


def proc_stat_text(cpu=CPU_TOTAL, per_cpu=PER_CPU, *, btime: int = BTIME, ctxt: int = 222389,
                   intr: int = 126136, processes: int = 3629, procs_running: int = 4,
                   procs_blocked: int = 1) -> bytes:
    L = [b"cpu  " + b" ".join(b"%d" % x for x in cpu)]
    L += [b"cpu%d " % i + b" ".join(b"%d" % x for x in c) for i, c in enumerate(per_cpu)]
    L += [
        b"intr %d 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 13 0 0 0 0 327 45" % intr,
        b"ctxt %d" % ctxt, b"btime %d" % btime, b"processes %d" % processes,
        b"procs_running %d" % procs_running, b"procs_blocked %d" % procs_blocked,
        b"softirq 96806 0 22445 3 1888 10597 0 4 37675 0 24194",
    ]
    return b"\n".join(L) + b"\n"


def meminfo_text(kb: dict = MEMINFO_KB) -> bytes:
    out = b"".join(b"%-16s%8d kB\n" % (k.encode() + b":", v) for k, v in kb.items())
    out += b"".join(b"%-16s%8d\n" % (k.encode() + b":", v) for k, v in MEMINFO_COUNTS.items())
    out += b"".join(b"%-16s%8d kB\n" % (k.encode() + b":", v) for k, v in MEMINFO_KB_TAIL.items())
    return out


def vmstat_text(values: dict = VMSTAT) -> bytes:
    return b"".join(b"%s %d\n" % (k.encode(), v) for k, v in values.items())


# --------------------------------------------------------------------------
# The tree


class FakeProc:
    """Builds a fake procfs under ``root`` (created; host files written unless ``host=False``)."""

    def __init__(self, root: str | os.PathLike, *, host: bool = True):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        if host:
            self.write_host()

    # -- generic ------------------------------------------------------------
    def path(self, *parts: object) -> Path:
        return self.root.joinpath(*(str(p) for p in parts))

    def write(self, rel: str, data: bytes) -> Path:
        """Write (or overwrite) one file, relative to the root."""
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def remove(self, rel: str) -> None:
        p = self.root / rel
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.exists():
            shutil.rmtree(p)

    # -- host ---------------------------------------------------------------
    def write_host(self, *, btime: int = BTIME, boot_id: str | None = BOOT_ID,
                   pressure: bool = True) -> None:
        self.write("stat", proc_stat_text(btime=btime))
        self.write("loadavg", LOADAVG)
        self.write("uptime", UPTIME)
        self.write("meminfo", meminfo_text())
        self.write("vmstat", vmstat_text())
        self.write("diskstats", DISKSTATS)
        self.write("net/dev", NET_DEV)
        self.write("sys/fs/file-nr", FILE_NR)
        if boot_id is not None:
            self.write("sys/kernel/random/boot_id", boot_id.encode() + b"\n")
        if pressure:
            for res, data in PRESSURE.items():
                self.write(f"pressure/{res}", data)

    # -- processes ----------------------------------------------------------
    def add_process(
        self,
        pid: int,
        comm: bytes = b"proc",
        state: str = "S",
        *,
        ppid: int = 1,
        threads: Iterable[int | dict] | None = None,
        uid: int | tuple = 0,
        gid: int | tuple = 0,
        cmdline: bytes | object = _UNSET,
        exe: bytes | None | object = _UNSET,
        fds: int = 3,
        kthread: bool = False,
        io: dict | None = None,
        nofile: tuple[int | None, int | None] = (1024, 524288),
        cgroup: bytes = b"0::/user.slice/user-0.slice/session-1.scope\n",
        omit: Iterable[str] = (),
        files: dict[str, bytes] | None = None,
        **stat: int,
    ) -> Path:
        """Write /proc/PID with stat, status, io, cmdline, limits, cgroup, exe, fd/, task/.

        ``stat`` keywords (utime, starttime, rss, tty_nr, flags, processor, ...) go
        to :func:`stat_line`; ``threads`` lists TIDs or dicts of stat keywords
        plus ``tid`` (default: the main thread only, with the process's values);
        ``omit`` names files not to write (e.g. ``("io",)``); ``files`` overrides
        any file's bytes (e.g. ``{"stat": b"garbage"}``).
        """
        zombie = state in ("Z", "X")
        if kthread:
            stat["flags"] = stat.get("flags", 2129984) | PF_KTHREAD
            stat.setdefault("vsize", 0)
            stat.setdefault("rss", 0)
        if zombie:
            stat.setdefault("vsize", 0)
            stat.setdefault("rss", 0)
        if exe is _UNSET:
            exe = None if (kthread or zombie) else b"/usr/bin/" + comm.split(b"/")[0]
        if cmdline is _UNSET:
            cmdline = b"" if (kthread or zombie) else comm + b"\0"
        tlist = [pid] if threads is None else list(threads)
        stat.setdefault("num_threads", len(tlist))
        status_kw = {k: stat.pop(k) for k in list(stat)
                     if k in ("vm_rss_kb", "rss_anon_kb", "rss_file_kb", "rss_shmem_kb",
                              "vm_swap_kb", "voluntary", "nonvoluntary")}

        d = self.path(pid)
        d.mkdir(parents=True, exist_ok=True)
        content = {
            "stat": stat_line(pid, comm, state, ppid=ppid, **stat),
            "status": status_text(pid, comm, state, ppid=ppid, uid=uid, gid=gid,
                                  threads=stat["num_threads"], kthread=kthread,
                                  zombie=zombie, **status_kw),
            "statm": b"%d %d %d 1 0 %d 0\n" % (stat.get("vsize", 15433728) // 4096, stat.get("rss", 2245),
                                               stat.get("rss", 2245) // 2, stat.get("rss", 2245) // 2),
            "io": io_text(**(io or {})),
            "cmdline": cmdline,
            "limits": limits_text(*nofile),
            "cgroup": cgroup,
        }
        content.update(files or {})
        omit = set(omit)
        for name, data in content.items():
            if name not in omit:
                (d / name).write_bytes(data)
        if exe is not None and "exe" not in omit:
            os.symlink(exe, os.fsencode(d / "exe"))
        if "fd" not in omit:
            (d / "fd").mkdir(exist_ok=True)
            for n in range(fds):
                target = ("/dev/pts/0", "pipe:[31337]", "socket:[42424]")[n % 3]
                os.symlink(target, d / "fd" / str(n))
        if "task" not in omit:
            for t in tlist:
                self.add_thread(pid, t, comm=comm, state=state, ppid=ppid, uid=uid,
                                gid=gid, kthread=kthread, proc_stat=stat)
        return d

    def add_thread(self, pid: int, t: int | dict, *, comm: bytes = b"proc", state: str = "S",
                   ppid: int = 1, uid: int | tuple = 0, gid: int | tuple = 0,
                   kthread: bool = False, proc_stat: dict | None = None) -> Path:
        """Write /proc/PID/task/TID/{stat,status}; ``t`` is a TID or a dict with ``tid``."""
        kw = dict(proc_stat or {})
        if isinstance(t, dict):
            kw.update(t)
            tid = kw.pop("tid")
        else:
            tid = t
        comm = kw.pop("comm", comm)
        state = kw.pop("state", state)
        voluntary = kw.pop("voluntary", 1234)
        nonvoluntary = kw.pop("nonvoluntary", 56)
        d = self.path(pid, "task", tid)
        d.mkdir(parents=True, exist_ok=True)
        kw.setdefault("pgid", pid)
        kw.setdefault("sid", pid)
        (d / "stat").write_bytes(stat_line(tid, comm, state, ppid=ppid, **kw))
        (d / "status").write_bytes(status_text(
            tid, comm, state, tgid=pid, ppid=ppid, uid=uid, gid=gid,
            threads=kw.get("num_threads", 1), kthread=kthread, zombie=state in ("Z", "X"),
            voluntary=voluntary, nonvoluntary=nonvoluntary))
        return d

    def remove_process(self, pid: int) -> None:
        shutil.rmtree(self.path(pid))


# --------------------------------------------------------------------------
# Fault injection


def _key(parts: Iterable[object]) -> tuple[str, ...]:
    return tuple(str(p) for p in parts)


class FaultyProcFS(ProcFS):
    """A :class:`ProcFS` that refuses or loses chosen paths, and runs hooks after reads.

    Paths are given as tuples of parts, exactly as the recorder asks for them:
    ``(pid, "io")``, ``(pid, "exe")``, ``(pid, "task", tid, "stat")``, ``(pid, "fd")``.

    * ``deny``: reads/readlinks/listdirs of these raise :class:`Denied`;
    * ``gone``: they raise :class:`Gone`;
    * ``after``: ``{path: callback}``, called right after that path was read
      (e.g. to delete the process directory after its stat was read).
    """

    def __init__(self, root: str | os.PathLike, *, deny: Iterable = (), gone: Iterable = (),
                 after: dict | None = None):
        super().__init__(str(root))
        self.deny = {_key(p) for p in deny}
        self.gone = {_key(p) for p in gone}
        self.after: dict[tuple[str, ...], Callable[[], None]] = {
            _key(k): v for k, v in (after or {}).items()}
        self.calls: list[tuple[str, ...]] = []

    def _check(self, parts) -> tuple[str, ...]:
        k = _key(parts)
        self.calls.append(k)
        if k in self.deny:
            raise Denied(f"[Errno 13] Permission denied: {self.path(*parts)!r}")
        if k in self.gone:
            raise Gone(f"[Errno 3] No such process: {self.path(*parts)!r}")
        return k

    def _after(self, k) -> None:
        cb = self.after.get(k)
        if cb is not None:
            cb()

    def read(self, *parts: object) -> bytes:
        k = self._check(parts)
        data = super().read(*parts)
        self._after(k)
        return data

    def read_one(self, *parts: object) -> bytes:
        k = self._check(parts)
        data = super().read_one(*parts)
        self._after(k)
        return data

    def readlink(self, *parts: object) -> bytes:
        k = self._check(parts)
        data = super().readlink(*parts)
        self._after(k)
        return data

    def listdir(self, *parts: object) -> list[str]:
        k = self._check(parts)
        data = super().listdir(*parts)
        self._after(k)
        return data
