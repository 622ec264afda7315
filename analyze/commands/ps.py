"""``procsnap ps``: ps's options, selection and columns, over any moment.

The command line is procps-ng ps's own (4.0), parsed here by hand because it
mixes three syntaxes: UNIX options with a dash that group (``-ef``, ``-eLo
pid,comm``, ``-p1``), BSD options without one (``aux``, ``p 1``, ``k -rss``)
and GNU long options (``--sort=-rss``, ``--pid 1``). The rows come from one
snapshot per host of ``processes`` (and ``threads`` with ``-L``/``-T``): the
live host now, or a recording at ``--at``.

Selection follows ps: ``-e``/``-A`` (or ``ax``) selects every process; the
lists (``-p``, ``-u``, ``-U``, ``-C``, ``-s``, ``-t``, ``--ppid``) are ORed;
without any selection ps lists the caller's processes on the caller's
terminal (same effective uid and tty), ``a`` and ``x`` widen that as in BSD ps,
``-N`` negates and ``r`` keeps running processes. In a recording "the caller"
means nothing, so there a plain ``procsnap ps`` (or ``x``) lists every process.

The columns are ps's (:data:`FIELDS`: the same names, headers, widths and
text) and the listing is laid out the way procps-ng 4.0 lays it out: numbers
right-aligned to the column, text left-aligned, a value too wide for its
column pushing the rest of the line right, names and commands cut to their
column unless they are last, the last column never cut. ``-o`` takes
``FIELD``, ``FIELD=HEADER`` and ``FIELD:WIDTH`` items separated by commas or
spaces and may be repeated; all headers empty means no header line.

What a snapshot cannot give is left out or refused: the STAT flags ``+``
(foreground process group: tpgid is not recorded) and ``L`` (locked pages);
the fields wchan, f/flags, tpgid, the security label, signals, the real and
saved group and user ids other than ruid are refused with a one-line error.
NI shows ``-`` for real-time tasks (a negative kernel priority); a SCHED_IDLE
task, which ps also shows as ``-``, shows its nice value.

``%cpu``: on the live host ps's own definition, CPU time over the time since
the process (thread, with -L) started; in a recording the CPU used between the
previous snapshot and this one, over the time between them (``process_rates``
/ ``thread_rates``), or ps's definition where there is no previous sample (the
recording's first snapshot, a process started in between). ``%mem`` is RSS
over MemTotal. Times (START, STIME, STARTED) are printed in local time, as ps
does; "today" and "the last 24 hours" are counted from the snapshot's time.

``--format csv|json`` gives the same rows for scripts, one key per column
(the field name as given, or NAME of ``FIELD=NAME``), with numbers as numbers
and names and commands in full (control characters escaped by
:mod:`analyze.output`'s rule in CSV, by its encoder in JSON). (ps's ``-f`` is its full format
and ``-F`` its extra-full format, so procsnap's usual ``-f FORMAT`` is not
available here; ``--format FIELDS``, ps's long spelling of ``-o``, still
works for any other value.)

Exit status as ps: 1 when no process is listed, 0 otherwise.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from analyze.errors import ProcsnapError, UsageError, live_only

FORMATS = ("table", "csv", "json")

# --------------------------------------------------------------------------
# Rows


@dataclass
class Proc:
    """One line of ps: a process, or with -L/-T one of its threads."""

    host: str
    pid: int
    tid: int
    ppid: int
    pgid: int
    sid: int
    start: dt.datetime
    comm: str
    comm_raw: bytes | None
    cmdline: str | None
    cmdline_raw: bytes | None
    exe: str | None
    state: str
    uid: int
    user: str
    ruid: int
    gid: int
    nice: int
    priority: int
    processor: int | None
    nlwp: int
    cputime: float          # user + system, seconds
    rss: int                # bytes
    vms: int                # bytes
    minflt: int
    majflt: int
    cgroup: str | None
    tty: str | None
    elapsed: float          # seconds since the start, at the snapshot
    now: float              # the snapshot's time, epoch seconds
    pcpu: float
    mem_total: int | None   # bytes
    thread: bool = False
    comm_proc: str = ""     # the process's name (what -C matches, also on a thread's line)


@dataclass
class Ctx:
    """What a column's text may depend on besides its row."""

    numeric_users: bool = False      # BSD n
    bsd_c: bool = False              # BSD c: command name instead of args
    utf8: bool = True
    page_size: int = 4096
    user_names: dict = field(default_factory=dict)   # uid -> name (for ruser)
    live: bool = True


# --------------------------------------------------------------------------
# Text of values, as procps-ng 4.0 prints them


def utf8_locale() -> bool:
    """Whether ps would run in a UTF-8 locale (LC_ALL, else LC_CTYPE, else LANG)."""
    for var in ("LC_ALL", "LC_CTYPE", "LANG"):
        v = os.environ.get(var)
        if v:
            return "utf-8" in v.lower() or "utf8" in v.lower()
    return False


def shown(text: str | None, raw: bytes | None, utf8: bool, args: bool = False) -> str:
    """A name or command line as ps prints it: in a UTF-8 locale each unprintable character becomes
    '?'; outside one, an ASCII control character becomes '.' and each byte above ASCII '?'. In a
    command line (args) a newline is a space, as procps reads it."""
    b = raw if raw is not None else (text or "").encode("utf-8", "surrogateescape")
    if args:  # procps reads a command line into a 128 KiB buffer: what is past it is never seen
        b = b[:LINE_MAX - 1].replace(b"\n", b" ")
    if b.isascii():
        t = b.decode("ascii")
        if t.isprintable():  # for ASCII: exactly 0x20-0x7E, shown as they are in either locale
            return t
    if not utf8:
        return "".join(chr(x) if 0x20 <= x < 0x7F else "." if x < 0x80 else "?" for x in b)
    return "".join(ch if _printable(ch) else "?" for ch in b.decode("utf-8", "surrogateescape"))


def _printable(ch: str) -> bool:
    """What ps prints of a character in a UTF-8 locale: printable ASCII, and above it what the C
    library's iswprint says (glibc's tables, not Python's: they differ on format characters and
    on the newest code points). A byte that is not UTF-8 is not printable."""
    o = ord(ch)
    if o < 0x80:
        return 0x20 <= o < 0x7F
    if 0xDC80 <= o <= 0xDCFF:
        return False
    return bool(_iswprint()(o))


_LIBC: dict = {}


def _libc(name: str, fallback):
    """iswprint or wcwidth of the C library, in the locale Python took from the environment (as ps
    does); fallback where there is no such C library or the locale is not a UTF-8 one."""
    f = _LIBC.get(name)
    if f is None:
        import ctypes
        import ctypes.util
        try:
            f = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
            f.argtypes, f.restype = [ctypes.c_uint32], ctypes.c_int
            if f(0xE9) != 1:
                raise OSError
        except (OSError, AttributeError):
            f = fallback
        _LIBC[name] = f
    return f


def _iswprint():
    import unicodedata
    return _libc("iswprint", lambda o: unicodedata.category(chr(o)) not in ("Cc", "Cn", "Cs", "Zl", "Zp"))


def _wcwidth():
    import unicodedata
    return _libc("wcwidth", lambda o: 2 if unicodedata.east_asian_width(chr(o)) in "WF" else
                 0 if unicodedata.combining(chr(o)) else 1)


def _secs(x: float) -> int:
    """Whole seconds of a float sum of clock ticks (0.7 + 0.3 is 1 here, as in ticks)."""
    return max(int(math.floor(x + 1e-6)), 0)


def fmt_time(seconds: float) -> str:
    """TIME: [DD-]HH:MM:SS of CPU time."""
    t = _secs(seconds)
    dd, t = divmod(t, 86400)
    hh, t = divmod(t, 3600)
    mm, ss = divmod(t, 60)
    return (f"{dd}-" if dd else "") + f"{hh:02d}:{mm:02d}:{ss:02d}"


def fmt_etime(seconds: float) -> str:
    """ELAPSED: [[DD-]HH:]MM:SS."""
    t = _secs(seconds)
    dd, t = divmod(t, 86400)
    hh, t = divmod(t, 3600)
    mm, ss = divmod(t, 60)
    out = f"{dd}-" if dd else ""
    if dd or hh:
        out += f"{hh:02d}:"
    return out + f"{mm:02d}:{ss:02d}"


def fmt_bsdtime(seconds: float) -> str:
    """TIME of BSD formats (aux): M:SS, minutes right-aligned in 3."""
    u = _secs(seconds)
    return f"{u // 60:3d}:{u % 60:02d}"


def fmt_pcpu(pct: float) -> str:
    """%CPU: tenths cut (not rounded); from 100 on, whole numbers."""
    p = int(max(pct, 0.0) * 10)
    return str(p // 10) if p > 999 else f"{p // 10}.{p % 10}"


def fmt_pmem(rss: int, mem_total: int | None) -> str:
    """%MEM: RSS KiB per mille of MemTotal KiB, cut, at most 99.9."""
    if not mem_total:
        return "-"
    p = min((rss // 1024) * 1000 // (mem_total // 1024), 999)
    return f"{p // 10:2d}.{p % 10}"


def fmt_stime(t: int, now: float) -> str:
    """STIME/START: HH:MM today, MonDD this year, YYYY before (local time)."""
    pt, nt = time.localtime(t), time.localtime(now)
    fmt = "%H:%M"
    if nt.tm_yday != pt.tm_yday:
        fmt = "%b%d"
    if nt.tm_year != pt.tm_year:
        fmt = "%Y"
    return time.strftime(fmt, pt)


def fmt_start(t: int, now: float) -> str:
    """STARTED (start): HH:MM:SS within 24 hours, else '  Mon DD'."""
    s = list(time.ctime(t))
    if s[8] == " ":
        s[8] = "0"
    if s[11] == " ":
        s[11] = "0"
    s = "".join(s)
    if t + 86400 > now:
        return s[11:19]
    return "  " + s[4:10]


def fmt_bsdstart(t: int, now: float) -> str:
    """START of bsdstart: ' HH:MM' within 24 hours, else 'Mon DD'."""
    s = time.ctime(t)
    return s[4:10] if now - t > 86400 else s[10:16]


def fmt_lstart(t: int) -> str:
    return time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(t))


def start_secs(p: Proc) -> int:
    return int(math.floor(p.start.timestamp() + 1e-6))


def stat_text(p: Proc) -> str:
    """STAT: the state and the BSD flags a snapshot can show (no '+', no 'L')."""
    s = p.state
    if p.nice < 0:
        s += "<"
    elif p.nice > 0:
        s += "N"
    if p.sid == p.pid:
        s += "s"
    if p.nlwp > 1:
        s += "l"
    return s


def args_text(p: Proc, ctx: Ctx, escape: bool = True) -> str:
    """COMMAND/CMD of args: the command line, or [comm] when it is empty (kernel threads,
    zombies: '[comm] <defunct>'); with BSD c the command name."""
    comm = shown(p.comm, p.comm_raw, ctx.utf8) if escape else p.comm
    defunct = " <defunct>" if p.state == "Z" else ""
    if ctx.bsd_c:
        return comm + defunct
    if not p.cmdline and not p.cmdline_raw:
        return f"[{comm}]{defunct}"
    if not escape:
        return p.cmdline
    raw = None
    if p.cmdline_raw is not None:
        # the exact argv of /proc/PID/cmdline (NUL-separated): joined by spaces, as ps joins it
        from recorder.source.procfs import parse_cmdline
        raw = parse_cmdline(p.cmdline_raw)[1]
    return shown(p.cmdline, raw, ctx.utf8, args=True)


def ruser_name(p: Proc, ctx: Ctx) -> str:
    if p.ruid == p.uid:
        return p.user
    name = ctx.user_names.get(p.ruid)
    if name is None and ctx.live:
        import pwd
        try:
            name = pwd.getpwuid(p.ruid).pw_name
        except KeyError:
            pass
    return name if name is not None else str(p.ruid)


def group_name(p: Proc, ctx: Ctx) -> str:
    """Effective group: its name on the live host; in a recording the number (names of groups
    are not recorded)."""
    if ctx.live:
        import grp
        try:
            return grp.getgrgid(p.gid).gr_name
        except KeyError:
            pass
    return str(p.gid)


def is_rt(p: Proc) -> bool:
    return p.priority < 0


# --------------------------------------------------------------------------
# Fields


@dataclass(frozen=True)
class Field:
    spec: str
    head: str
    width: int
    just: str                      # R right, L left, U left and cut to the column unless last, N a name
    text: Callable[[Proc, Ctx], str]
    value: Callable[[Proc, Ctx], Any] | None = None     # for csv/json; default: the text
    sort: Callable[[Proc, Ctx], Any] | None = None      # default: the value
    pidmax: bool = False           # width follows pid_max, as ps's pid columns
    needs_system: bool = False

    def val(self, p: Proc, ctx: Ctx):
        return self.value(p, ctx) if self.value else self.text(p, ctx)

    def key(self, p: Proc, ctx: Ctx):
        return self.sort(p, ctx) if self.sort else self.val(p, ctx)


FIELDS: dict[str, Field] = {}


def _f(specs: str, head: str, width: int, just: str, text, value=None, sort=None, **kw) -> None:
    for spec in specs.split():
        FIELDS[spec] = Field(spec, head, width, just, text, value, sort, **kw)


def _num(attr: str):
    return (lambda p, c: str(getattr(p, attr))), (lambda p, c: getattr(p, attr))


def _pcpu_val(p, c):
    return float(fmt_pcpu(p.pcpu))


def _pmem_val(p, c):
    t = fmt_pmem(p.rss, p.mem_total)
    return None if t == "-" else float(t)


def _user_text(p, c):
    return str(p.uid) if c.numeric_users else shown(p.user, None, c.utf8)


def _ruser_text(p, c):
    return str(p.ruid) if c.numeric_users else shown(ruser_name(p, c), None, c.utf8)


_START = dict(value=None, sort=lambda p, c: p.start)
_PID = _num("pid")

_f("%cpu pcpu", "%CPU", 4, "R", lambda p, c: fmt_pcpu(p.pcpu), _pcpu_val, lambda p, c: p.pcpu, needs_system=True)
_f("%mem pmem", "%MEM", 4, "R", lambda p, c: fmt_pmem(p.rss, p.mem_total), _pmem_val, lambda p, c: p.rss,
   needs_system=True)
_f("c", "C", 2, "R", lambda p, c: f"{min(int(p.pcpu), 99):2d}", lambda p, c: min(int(p.pcpu), 99),
   lambda p, c: p.pcpu, needs_system=True)
_f("args command", "COMMAND", 27, "U", args_text, lambda p, c: args_text(p, c, escape=False))
_f("cmd", "CMD", 27, "U", args_text, lambda p, c: args_text(p, c, escape=False))
_f("comm ucomm", "COMMAND", 15, "U", lambda p, c: shown(p.comm, p.comm_raw, c.utf8), lambda p, c: p.comm)
_f("ucmd", "CMD", 15, "U", lambda p, c: shown(p.comm, p.comm_raw, c.utf8), lambda p, c: p.comm)
_f("fname", "COMMAND", 8, "L", lambda p, c: shown(p.comm, p.comm_raw, c.utf8)[:8], lambda p, c: p.comm[:8])
_f("cgroup", "CGROUP", 27, "U", lambda p, c: "-" if p.cgroup in (None, "/") else shown(p.cgroup, None, c.utf8),
   lambda p, c: "-" if p.cgroup in (None, "/") else p.cgroup)
_f("exe", "EXE", 27, "U", lambda p, c: "-" if p.exe is None else shown(p.exe, None, c.utf8), lambda p, c: p.exe)
_f("etime", "ELAPSED", 11, "R", lambda p, c: fmt_etime(p.elapsed), None, lambda p, c: p.elapsed,
   needs_system=True)
_f("etimes", "ELAPSED", 7, "R", lambda p, c: str(_secs(p.elapsed)), lambda p, c: _secs(p.elapsed),
   lambda p, c: p.elapsed, needs_system=True)
_f("euid", "EUID", 5, "R", *_num("uid"))
_f("uid", "UID", 5, "R", *_num("uid"))
_f("ruid", "RUID", 5, "R", *_num("ruid"))
_f("gid", "GID", 5, "R", *_num("gid"))
_f("egid", "EGID", 5, "R", *_num("gid"))
_f("euser", "EUSER", 8, "N", _user_text, lambda p, c: p.user)
_f("user uname", "USER", 8, "N", _user_text, lambda p, c: p.user)
_f("uid_hack", "UID", 8, "N", _user_text, lambda p, c: p.user)
_f("ruser", "RUSER", 8, "N", _ruser_text, lambda p, c: ruser_name(p, c))
_f("group", "GROUP", 8, "N", lambda p, c: group_name(p, c), None)
_f("egroup", "EGROUP", 8, "N", lambda p, c: group_name(p, c), None)
_f("lstart", "STARTED", 24, "R", lambda p, c: fmt_lstart(start_secs(p)), **_START)
_f("start", "STARTED", 8, "R", lambda p, c: fmt_start(start_secs(p), p.now), **_START)
_f("start_time", "START", 5, "R", lambda p, c: fmt_stime(start_secs(p), p.now), **_START)
_f("stime", "STIME", 5, "R", lambda p, c: fmt_stime(start_secs(p), p.now), **_START)
_f("bsdstart", "START", 6, "R", lambda p, c: fmt_bsdstart(start_secs(p), p.now), **_START)
_f("lwp", "LWP", 5, "R", *_num("tid"), pidmax=True)
_f("tid", "TID", 5, "R", *_num("tid"), pidmax=True)
_f("spid", "SPID", 5, "R", *_num("tid"), pidmax=True)
_f("majflt", "MAJFLT", 6, "R", *_num("majflt"))
_f("minflt", "MINFLT", 6, "R", *_num("minflt"))
_f("maj_flt", "MAJFL", 6, "R", *_num("majflt"))
_f("min_flt", "MINFL", 6, "R", *_num("minflt"))
_f("ni nice", "NI", 3, "R", lambda p, c: "-" if is_rt(p) else str(p.nice),
   lambda p, c: None if is_rt(p) else p.nice, lambda p, c: p.nice)
_f("nlwp", "NLWP", 4, "R", *_num("nlwp"))
_f("thcount", "THCNT", 5, "R", *_num("nlwp"))
_f("pid", "PID", 5, "R", *_PID, pidmax=True)
_f("tgid", "TGID", 5, "R", *_PID, pidmax=True)
_f("ppid", "PPID", 5, "R", *_num("ppid"), pidmax=True)
_f("pgid", "PGID", 5, "R", *_num("pgid"), pidmax=True)
_f("pgrp", "PGRP", 5, "R", *_num("pgid"), pidmax=True)
_f("sid", "SID", 5, "R", *_num("sid"), pidmax=True)
_f("sess session", "SESS", 5, "R", *_num("sid"), pidmax=True)
_f("pri", "PRI", 3, "R", lambda p, c: str(39 - p.priority), lambda p, c: 39 - p.priority,
   lambda p, c: p.priority)
_f("opri intpri", "PRI", 3, "R", lambda p, c: str(60 + p.priority), lambda p, c: 60 + p.priority,
   lambda p, c: p.priority)
_f("priority", "PRI", 3, "R", *_num("priority"))
_f("psr", "PSR", 3, "R", lambda p, c: "-" if p.processor is None else str(p.processor),
   lambda p, c: p.processor)
_f("cpu", "CPU", 3, "R", lambda p, c: "-" if p.processor is None else str(p.processor),
   lambda p, c: p.processor)
_f("rss rssize", "RSS", 5, "R", lambda p, c: str(p.rss // 1024), lambda p, c: p.rss // 1024)
_f("rsz", "RSZ", 5, "R", lambda p, c: str(p.rss // 1024), lambda p, c: p.rss // 1024)
_f("vsz vsize", "VSZ", 6, "R", lambda p, c: str(p.vms // 1024), lambda p, c: p.vms // 1024)
_f("sz", "SZ", 5, "R", lambda p, c: str(p.vms // c.page_size), lambda p, c: p.vms // c.page_size)
_f("s state", "S", 1, "L", lambda p, c: p.state)
_f("stat", "STAT", 4, "L", lambda p, c: stat_text(p))
_f("time cputime", "TIME", 8, "R", lambda p, c: fmt_time(p.cputime), None, lambda p, c: p.cputime)
_f("times cputimes", "TIME", 8, "R", lambda p, c: str(_secs(p.cputime)), lambda p, c: _secs(p.cputime),
   lambda p, c: p.cputime)
_f("bsdtime", "TIME", 6, "R", lambda p, c: fmt_bsdtime(p.cputime), None, lambda p, c: p.cputime)
_f("tname tty8", "TTY", 8, "L", lambda p, c: p.tty or "?", lambda p, c: p.tty, lambda p, c: p.tty or "")
_f("tty tt", "TT", 8, "L", lambda p, c: p.tty or "?", lambda p, c: p.tty, lambda p, c: p.tty or "")

# ps fields a snapshot does not hold: refused with the reason, not as "unknown".
NOT_RECORDED = {
    **dict.fromkeys(("wchan", "nwchan", "wname"), "the kernel function a process sleeps in"),
    **dict.fromkeys(("f", "flag", "flags"), "the kernel process flags"),
    "tpgid": "the terminal's foreground process group",
    **dict.fromkeys(("label", "context", "zone"), "security labels"),
    **dict.fromkeys(("rgid", "rgroup", "sgid", "sgroup", "svgid", "svgroup", "fgid", "fgroup", "fsgid",
                     "fsgroup", "suid", "svuid", "suser", "svuser", "fuid", "fuser", "fsuid", "fsuser",
                     "supgid", "supgrp"), "real, saved and file-system ids other than ruid"),
    **dict.fromkeys(("pending", "sig", "sigmask", "blocked", "sigignore", "ignored", "sigcatch", "caught",
                     "tsig", "sig_block", "sig_catch", "sig_ignore", "sig_pend"), "signal masks"),
    **dict.fromkeys(("rtprio", "cls", "class", "policy", "sched"), "the scheduling policy"),
    **dict.fromkeys(("addr", "esp", "eip", "stackp", "start_stack", "start_code", "end_code"),
                    "memory addresses"),
    **dict.fromkeys(("pss", "uss", "trs", "drs", "dsiz", "tsiz", "size", "lim", "m_drs", "m_trs", "m_size",
                     "resident", "share", "vm_data", "vm_exe", "vm_lib", "vm_lock", "vm_stack", "htprv",
                     "htshr"), "this breakdown of memory"),
    **dict.fromkeys(("environ",), "the environment"),
    **dict.fromkeys(("ipcns", "mntns", "netns", "pidns", "userns", "utsns", "cgroupns", "timens"),
                    "namespaces"),
    **dict.fromkeys(("oom", "oomadj", "ag_id", "ag_nice", "luid", "lsession", "machine", "ouid", "seat",
                     "slice", "unit", "uunit", "lxc", "docker", "cgname", "numa", "cputimes_c", "cuc", "cuu",
                     "rbytes", "rchars", "rops", "wbytes", "wcbytes", "wchars", "wops", "fds", "pcap",
                     "pcaps", "sgi_p", "utime", "sl", "re", "pagein"), "this value in ps's form"),
}

# What the default formats are made of (procps-ng's OL_u, and its -O trailer).
BSD_U = "user,pid,pcpu,pmem,vsz,rss,tname,stat,start_time,bsdtime,args"
O_TRAILER = "state,tname,time,command"


# --------------------------------------------------------------------------
# Options


@dataclass
class Spec:
    """One -o item: FIELD[:WIDTH][=HEADER]."""

    field: Field
    name: str                   # as given (the csv/json key)
    header: str | None = None   # override
    width: int | None = None    # override


@dataclass
class Options:
    all: bool = False
    simple: set = field(default_factory=set)      # -a -d a x g
    pids: list = field(default_factory=list)
    ppids: list = field(default_factory=list)
    sids: list = field(default_factory=list)
    ttys: list = field(default_factory=list)
    euids: list = field(default_factory=list)     # names or numbers
    ruids: list = field(default_factory=list)
    comms: list = field(default_factory=list)
    my_tty: bool = False                          # BSD T
    negate: bool = False
    running: bool = False
    prefer_bsd: bool = False
    format_flags: set = field(default_factory=set)   # "f" (-f, -F), "u" (BSD u)
    modifiers: set = field(default_factory=set)      # "F", "j", "P"
    threads: set = field(default_factory=set)        # "L", "T"
    user_fmt: list = field(default_factory=list)     # [Spec]
    O_used: bool = False
    sort: list = field(default_factory=list)         # [(Field, descending)]
    sort_given: bool = False
    no_headers: bool = False
    numeric_users: bool = False
    bsd_c: bool = False
    fmt: str = "table"
    recs: list = field(default_factory=list)
    at: str | None = None
    hosts: list = field(default_factory=list)
    help: bool = False
    list_fields: bool = False

    @property
    def has_lists(self) -> bool:
        return bool(self.pids or self.ppids or self.sids or self.ttys or self.euids or self.ruids
                    or self.comms or self.my_tty)


UNSUPPORTED_UNIX = {
    "H": "process trees (-H) are not supported (procsnap query --name process_tree shows the tree)",
    "l": "-l needs WCHAN and F, which are not recorded (-F gives the long listing's other columns)",
    "y": "-y goes with -l, which is not supported (WCHAN and F are not recorded)",
    "c": "-c needs the scheduling class, which is not recorded",
    "M": "security labels (-M) are not recorded",
    "Z": "security labels (-Z) are not recorded",
    "m": "-m (threads after their process) is not supported: use -L",
    "g": "-g is ambiguous (session or group): use -s SID",
    "G": "the real group id (-G) is not recorded",
    "V": "-V: procsnap ps follows procps-ng 4.0",
}
UNSUPPORTED_BSD = {
    "e": "e (environment) is not recorded",
    "f": "f (ASCII-art forest) is not supported (procsnap query --name process_tree shows the tree)",
    "j": "j (BSD job format) needs TPGID, which is not recorded (-j is supported)",
    "l": "l (BSD long format) needs WCHAN and F, which are not recorded",
    "s": "s (signal format): signal masks are not recorded",
    "v": "v (virtual memory format) needs memory details that are not recorded",
    "X": "X (register format) is not recorded",
    "Z": "Z (security labels) is not recorded",
    "S": "S (children's CPU time) is not recorded",
    "m": "m (threads after their process) is not supported: use -L",
    "H": "H (threads as processes) is not supported: use -L",
    "O": "O is not supported: use -O FIELDS, or o FIELDS with --sort",
    "V": "V: procsnap ps follows procps-ng 4.0",
}


def parse_args(argv: list[str]) -> Options:
    """Parse ps's command line (plus --rec/--at/--host/--format csv|json) into Options."""
    o = Options()
    i = 0

    def next_value(opt: str) -> str:
        nonlocal i
        if i + 1 >= len(argv):
            raise UsageError(f"{opt} needs a value")
        i += 1
        return argv[i]

    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and len(a) > 2:
            _long(o, a, next_value)
        elif a.startswith("-") and len(a) > 1:
            letters = a[1:]
            if len(letters) >= 2 and "x" in letters and set(letters) <= set("auxw"):
                _bsd(o, letters, next_value)       # `ps -aux`, tolerated as `ps aux`
            else:
                _unix(o, letters, next_value)
        elif a in FORMATS:
            raise UsageError(f"{a!r} is not a ps option: use --format {a} (ps's -f is its full format)")
        elif a and all(ch.isdigit() or ch == "," for ch in a):
            o.pids.extend(_ints(a, "process ID"))   # `ps 1234` is `ps p 1234`, BSD syntax
            o.prefer_bsd = True
        elif a and a not in ("-", "--"):
            _bsd(o, a, next_value)
        else:
            raise UsageError(f"unknown option {a!r} (procsnap ps --help lists the options)")
        i += 1
    return o


def _unix(o: Options, letters: str, next_value) -> None:
    j = 0
    while j < len(letters):
        c = letters[j]
        rest = letters[j + 1:]
        if c in "puUCstoOq":
            _valued(o, c, rest or next_value(f"-{c}"), unix=True)
            return
        if c in "eA":
            o.all = True
        elif c in "ad":
            o.simple.add("-" + c)
        elif c == "N":
            o.negate = True
        elif c == "f":
            o.format_flags.add("f")
        elif c == "F":
            o.format_flags.add("f")
            o.modifiers.add("F")
        elif c in "jP":
            o.modifiers.add(c)
        elif c in "LT":
            o.threads.add(c)
        elif c == "w":
            pass                                # wide output: the output is never cut
        elif c in UNSUPPORTED_UNIX:
            raise UsageError(UNSUPPORTED_UNIX[c])
        else:
            raise UsageError(f"unknown option -{c} (procsnap ps --help lists the options)")
        j += 1


def _bsd(o: Options, letters: str, next_value) -> None:
    o.prefer_bsd = True
    j = 0
    while j < len(letters):
        c = letters[j]
        rest = letters[j + 1:]
        if c in "pUtokq":
            _valued(o, c, rest or next_value(c), unix=False)
            return
        if c in "axg":
            o.simple.add(c)
        elif c == "u":
            o.format_flags.add("u")
        elif c == "h":
            o.no_headers = True
        elif c == "c":
            o.bsd_c = True
        elif c == "n":
            o.numeric_users = True
        elif c == "r":
            o.running = True
        elif c == "T":
            o.my_tty = True
        elif c == "w":
            pass
        elif c == "L":
            o.list_fields = True
        elif c in UNSUPPORTED_BSD:
            raise UsageError(UNSUPPORTED_BSD[c])
        else:
            raise UsageError(f"unknown option {c} (procsnap ps --help lists the options)")
        j += 1


_LONG_VALUED = {"--pid": "p", "--quick-pid": "p", "--ppid": "ppid", "--sid": "s", "--tty": "t", "--user": "u",
                "--User": "U", "--sort": "k", "--rec": "rec", "--at": "at", "--host": "host",
                "--format": "format", "--cols": None, "--columns": None, "--width": None, "--lines": None,
                "--rows": None}
_LONG_FLAGS = {"--deselect", "--no-headers", "--no-heading", "--headers", "--help"}
_LONG_UNSUPPORTED = {
    "--forest": "--forest is not supported (procsnap query --name process_tree shows the tree)",
    "--context": "security labels are not recorded",
    "--cumulative": "children's CPU time is not recorded",
    "--group": "use -o group and a filter: --group is not supported",
    "--Group": "the real group id is not recorded",
    "--version": "procsnap ps follows procps-ng 4.0",
    "--signames": "signal masks are not recorded",
    "--info": "--info is not supported",
}


def _long(o: Options, a: str, next_value) -> None:
    key, eq, val = a.partition("=")
    if key in _LONG_FLAGS:
        if eq:
            raise UsageError(f"{key} takes no value")
        if key == "--deselect":
            o.negate = True
        elif key in ("--no-headers", "--no-heading"):
            o.no_headers = True
        elif key == "--help":
            o.help = True
        return
    if key in _LONG_UNSUPPORTED:
        raise UsageError(_LONG_UNSUPPORTED[key])
    if key not in _LONG_VALUED:
        raise UsageError(f"unknown option {key} (procsnap ps --help lists the options)")
    val = val if eq else next_value(key)
    what = _LONG_VALUED[key]
    if what is None:
        return                                  # --cols/--lines: the output is never cut
    if what == "rec":
        o.recs.append(val)
    elif what == "at":
        o.at = val
    elif what == "host":
        o.hosts.append(val)
    elif what == "format":
        if val in FORMATS:
            o.fmt = val
        else:
            _valued(o, "o", val, unix=False)    # ps's own --format FIELDS, the same as -o
    elif what == "ppid":
        o.ppids.extend(_ints(val, "process ID"))
    else:
        _valued(o, what, val, unix=True)


def _items(v: str) -> list[str]:
    return [x for x in v.replace(",", " ").split() if x]


def _ints(v: str, what: str) -> list[int]:
    items = _items(v)
    if not items:
        raise UsageError(f"empty {what} list")
    out = []
    for x in items:
        if not x.isdigit():
            raise UsageError(f"{what} list syntax error: {x!r}")
        out.append(int(x))
    return out


def _valued(o: Options, c: str, v: str, unix: bool) -> None:
    if c in "pq":
        o.pids.extend(_ints(v, "process ID"))
    elif c == "s":
        o.sids.extend(_ints(v, "session ID"))
    elif c == "t":
        items = _items(v)
        if not items:
            raise UsageError("empty tty list")
        for x in items:
            x = x[5:] if x.startswith("/dev/") else x
            o.ttys.append(None if x in ("-", "?") else x)
    elif c == "u" or (c == "U" and not unix):
        o.euids.extend(_users(v))
    elif c == "U":
        o.ruids.extend(_users(v))
    elif c == "C":
        items = [x for x in v.split(",") if x]
        if not items:
            raise UsageError("empty command list")
        o.comms.extend(items)
    elif c == "o":
        if o.O_used:
            raise UsageError("-o can not follow -O")
        o.user_fmt.extend(parse_format(v))
    elif c == "O":
        if o.user_fmt or o.format_flags:
            raise UsageError("option -O can not follow other format options")
        o.user_fmt = parse_format("pid") + parse_format(v) + parse_format(O_TRAILER)
        o.O_used = True
    elif c == "k":
        if o.sort_given:
            raise UsageError("multiple sort options")
        o.sort = parse_sort(v)
        o.sort_given = True


def _users(v: str) -> list[str]:
    items = _items(v)
    if not items:
        raise UsageError("empty user list")
    return items


def _field(name: str) -> Field:
    f = FIELDS.get(name)
    if f is None:
        if name in NOT_RECORDED:
            raise UsageError(f"{name}: {NOT_RECORDED[name]} is not recorded by procsnap")
        raise UsageError(f'unknown user-defined format specifier "{name}" (procsnap ps L lists the fields)')
    return f


def parse_format(text: str) -> list[Spec]:
    """An -o list as procps parses it: items split on commas and blanks (one trailing separator
    allowed), each FIELD, FIELD=HEADER or FIELD:WIDTH (also FIELD:WIDTH=HEADER)."""
    seps = " ,\t\n"
    if not text or text[0] in seps:
        raise UsageError(f"improper format list {text!r}")
    body = text[:-1] if text[-1] in seps else text
    items = []
    cur = ""
    for ch in body:
        if ch in seps:
            if not cur:
                raise UsageError(f"improper format list {text!r}")
            items.append(cur)
            cur = ""
        else:
            cur += ch
    if not cur:
        raise UsageError(f"improper format list {text!r}")
    items.append(cur)
    out = []
    for item in items:
        name, eq, header = item.partition("=")
        name, colon, width = name.partition(":")
        w = None
        if colon:
            if not width.isdigit() or width.startswith("0"):
                raise UsageError(f"column widths must be unsigned decimal numbers: {item!r}")
            w = int(width)
        out.append(Spec(_field(name), header if eq and header else name, header if eq else None, w))
    return out


def parse_sort(text: str) -> list[tuple[Field, bool]]:
    """--sort/k: [+|-]FIELD items, split on commas and blanks."""
    seps = " ,\t\n"
    if not text or text[0] in seps or any(a in seps and b in seps for a, b in zip(text, text[1:])):
        raise UsageError(f"improper sort list {text!r}")
    out = []
    for item in text.replace("\t", " ").replace("\n", " ").replace(",", " ").split():
        desc = item.startswith("-")
        name = item[1:] if item[:1] in "+-" else item
        if name not in FIELDS:
            if name in NOT_RECORDED:
                raise UsageError(f"--sort {name}: {NOT_RECORDED[name]} is not recorded by procsnap")
            raise UsageError(f"unknown sort specifier {item!r}")
        out.append((FIELDS[name], desc))
    return out


# --------------------------------------------------------------------------
# Columns


@dataclass
class Column:
    field: Field | None        # None: the HOST column of a fleet
    head: str
    width: int
    key: str

    @property
    def just(self) -> str:
        return "L" if self.field is None else self.field.just


def _column(spec: Spec, pid_digits: int) -> Column:
    f = spec.field
    w = max(pid_digits, len(f.head)) if f.pidmax else f.width
    head = f.head
    if spec.header is not None:
        head = spec.header
        w = max(w, len(head))
    if spec.width is not None:
        w = spec.width
    return Column(f, head, w, spec.name)


def _specs(names: str) -> list[Spec]:
    return [Spec(FIELDS[n], n) for n in names.split(",")]


def sysv_list(o: Options) -> list[str]:
    """procps's generate_sysv_list: the default columns for -f, -F, -j, -L, -T, -P and BSD defaults."""
    f = "f" in o.format_flags
    F = "F" in o.modifiers
    L = "L" in o.threads
    out: list[str] = []
    push = lambda s: out.insert(0, s)  # noqa: E731 (the C code builds its list backwards)
    if o.prefer_bsd:
        push("cmd" if o.format_flags else "args")
        push("bsdtime")
        push("stat")
    else:
        push("cmd" if f else "ucmd")
        push("time")
    push("tname")
    if f:
        push("stime")
    if F:
        if "P" not in o.modifiers:
            push("psr")
        push("rss")
        push("sz")
    if L and f:
        push("nlwp")
    if f:
        push("c")
    if "P" in o.modifiers:
        push("psr")
    if L:
        push("lwp")
    if "j" in o.modifiers:
        push("sid")
        push("pgid")
    if f:
        push("ppid")
    if "T" in o.threads:
        push("spid")
    push("pid")
    if f:
        push("uid_hack")
    return out


def columns(o: Options, pid_digits: int) -> list[Column]:
    """The columns to print, as procps's process_sf_options chooses them."""
    if o.user_fmt:
        if o.format_flags:
            raise UsageError("conflicting format options (-o with -f, -F or u)")
        if o.modifiers:
            raise UsageError("can not use output modifiers (-F, -j, -P) with user-defined output")
        return [_column(s, pid_digits) for s in o.user_fmt]
    if not o.format_flags or o.format_flags == {"f"}:
        return [_column(s, pid_digits) for s in _specs(",".join(sysv_list(o)))]
    if o.format_flags != {"u"}:
        raise UsageError("conflicting format options (-f or -F with u)")
    cols = [_column(s, pid_digits) for s in _specs(BSD_U)]

    def add_after(heads: tuple[str, ...], name: str) -> bool:
        for h in heads:
            for n, c in enumerate(cols):
                if c.head == h:
                    cols.insert(n + 1, _column(Spec(FIELDS[name], name), pid_digits))
                    return True
        return False

    if "j" in o.modifiers:
        add_after(("PPID", "PID"), "pgid")
        add_after(("PGID",), "sid")
    if "P" in o.modifiers:
        raise UsageError("-P goes with the SysV formats (-f, -F), not with u")
    if "T" in o.threads:
        add_after(("PID",), "spid")
    if "L" in o.threads:
        add_after(("SID", "SESS", "PGID", "PGRP", "PPID", "PID"), "lwp")
        add_after(("%CPU",), "nlwp")
    return cols


# --------------------------------------------------------------------------
# Loading


def pid_digits_live() -> int:
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            return len(f.read().strip()) or 5
    except OSError:
        return 5


PROC_COLUMNS = ("pid", "ppid", "pgid", "sid", "start_time", "name", "name_raw", "cmdline", "cmdline_raw", "exe",
                "state", "uid", "user", "ruid", "gid", "nice", "priority", "processor", "num_threads")
THREAD_COLUMNS = ("pid", "tid", "start_time", "name", "name_raw", "state", "nice", "priority", "processor")


def load(rec, moment, threads: bool, live: bool) -> list[Proc]:
    """The rows of one snapshot: its processes, or with threads their threads."""
    from analyze.data.views import process_rates_select, thread_rates_select
    key = {"h": moment.host, "s": moment.snapshot_id}
    _, sysrows = rec.execute("SELECT mem_total, uptime_s, boot_time FROM system "
                             "WHERE host = $h AND snapshot_id = $s", key)
    rows = rates_at(rec, "processes", moment, lambda src, only: (
        "SELECT p.pid, p.ppid, p.pgid, p.sid, p.start_time, p.name, p.name_raw, p.cmdline, p.cmdline_raw, "
        "p.exe, p.state, p.uid, p.\"user\", p.ruid, p.gid, p.nice, p.priority, p.processor, p.num_threads, "
        "p.utime + p.stime, p.rss, p.vms, p.minflt, p.majflt, p.cgroup, p.tty, r.cpu_pct, r.interval_s IS NULL "
        "FROM processes p LEFT JOIN (SELECT boot_id, pid, start_time, cpu_pct, interval_s "
        f"FROM ({process_rates_select(src)}) WHERE host = $h AND snapshot_id = $s) r "
        "ON r.pid = p.pid AND r.start_time = p.start_time AND r.boot_id IS NOT DISTINCT FROM p.boot_id "
        f"WHERE p.host = $h AND p.snapshot_id = $s{only('p')} ORDER BY p.pid"))
    trows = None
    if threads:
        trows = rates_at(rec, "threads", moment, lambda src, only: (
            "SELECT t.pid, t.tid, t.start_time, t.name, t.name_raw, t.state, t.nice, t.priority, t.processor, "
            "t.utime + t.stime, t.minflt, t.majflt, r.cpu_pct, r.interval_s IS NULL "
            "FROM threads t LEFT JOIN (SELECT boot_id, pid, tid, start_time, cpu_pct, interval_s "
            f"FROM ({thread_rates_select(src)}) WHERE host = $h AND snapshot_id = $s) r "
            "ON r.pid = t.pid AND r.tid = t.tid AND r.start_time = t.start_time "
            "AND r.boot_id IS NOT DISTINCT FROM t.boot_id "
            f"WHERE t.host = $h AND t.snapshot_id = $s{only('t')} ORDER BY t.pid, t.tid"), by_tid=True)
    return build_procs(moment.host, moment.ts, sysrows[0] if sysrows else (None, None, None), rows, trows, live)


def rates_at(rec, table: str, moment, query, by_tid: bool = False) -> list[tuple]:
    """The rows of one snapshot with their rates: QUERY(source, only) is the query, over rates
    computed from the rows of SOURCE (a part of TABLE), whose rows end with whether the row had
    no previous row in SOURCE (dropped here); only(alias) is a further condition on its pids.

    The rates views sort every snapshot of the recording into their windows, while a rate needs
    only the previous row of its own instance: the source is the host's rows from the snapshot
    before this one up to this one, and the rows of an instance with no previous row there (new,
    or missed by the previous snapshot) are read again with every row of their pids, whole
    windows, which is what the view gives."""
    params = {"h": moment.host, "s": moment.snapshot_id, "t": moment.ts}
    _, bounds = rec.execute(f"SELECT (SELECT max(ts) FROM {table} WHERE host = $h AND snapshot_id = $s), "
                            "(SELECT max(ts) FROM snapshots WHERE host = $h AND ts < $t)", params)
    hi, lo = bounds[0]
    key = {"h": moment.host, "s": moment.snapshot_id}
    none = lambda alias: ""  # noqa: E731
    if hi is None:  # no row here with a time: nothing to narrow by
        return [r[:-1] for r in rec.execute(query(table, none), key)[1]]
    key["hi"] = hi
    if lo is None:  # the first snapshot: every earlier row of the host is in the source
        return [r[:-1] for r in rec.execute(query(f"(SELECT * FROM {table} WHERE host = $h AND ts <= $hi)", none),
                                            key)[1]]
    key["lo"] = lo
    _, rows = rec.execute(query(f"(SELECT * FROM {table} WHERE host = $h AND ts >= $lo AND ts <= $hi)", none), key)
    again = sorted({r[0] for r in rows if r[-1]})
    if again:
        _, redo = rec.execute(
            query(f"(SELECT * FROM {table} WHERE host = $h AND list_contains($pids, pid))",
                  lambda alias: f" AND list_contains($pids, {alias}.pid)"),
            {"h": moment.host, "s": moment.snapshot_id, "pids": again})
        gone = set(again)
        rows = [r for r in rows if r[0] not in gone] + redo
        rows.sort(key=(lambda r: (r[0], r[1])) if by_tid else (lambda r: r[0]))
    return [r[:-1] for r in rows]


def live_pids(o: Options) -> set | None:
    """The only processes a live listing must read: those of a lone -p (ps ORs every other
    selection with it, and -e, a, x, -N widen it), or None for all."""
    if o.pids and not (o.ppids or o.sids or o.ttys or o.euids or o.ruids or o.comms or o.my_tty or o.all
                       or o.simple or o.negate or o.running):
        return {int(p) for p in o.pids}
    return None


def load_live(o: Options, threads: bool) -> tuple[str, dt.datetime, list[Proc]]:
    """(host, now, rows) of the live host, read straight from /proc (no Arrow, no DuckDB: a one-shot
    ps must start fast) and only for the processes the options can select."""
    from recorder.collect.collector import Collector
    c = Collector(tables=("system", "processes"), redact=False)  # nothing reaches disk: print what ps prints
    now = dt.datetime.now(dt.timezone.utc)
    procs = c.live_processes(live_pids(o))
    system = c.live_system()
    rows = [tuple(p[k] for k in PROC_COLUMNS) + (p["utime"] + p["stime"], p["rss"], p["vms"], p["minflt"],
                                                  p["majflt"], p["cgroup"], p["tty"], None) for p in procs]
    trows = None
    if threads:
        trows = []
        for p in procs:
            try:
                got = c.live_threads(p["pid"])
            except Exception:  # gone since: ps shows no thread of it
                continue
            trows.extend(tuple(t[k] for k in THREAD_COLUMNS) + (t["utime"] + t["stime"], t["minflt"],
                                                                 t["majflt"], None) for t in got)
    sysrow = (system.get("mem_total"), system.get("uptime_s"), system.get("boot_time"))
    return c.host, now, build_procs(c.host, now, sysrow, rows, trows, True)


def build_procs(host: str, ts: dt.datetime, sysrow: tuple, rows, trows, live: bool) -> list[Proc]:
    """Procs (and with trows, thread lines) from process rows (PROC_COLUMNS, then cpu time, rss,
    vms, minflt, majflt, cgroup, tty, cpu_pct) and thread rows (THREAD_COLUMNS, then cpu time,
    minflt, majflt, cpu_pct) of one snapshot of one host."""
    mem_total, uptime, boot = sysrow
    now = ts.timestamp()

    def elapsed(start: dt.datetime) -> float:
        # as ps: the uptime at the snapshot less the start's offset from boot
        if uptime is not None and boot is not None and start >= boot:
            return max(uptime - (start - boot).total_seconds(), 0.0)
        return max((ts - start).total_seconds(), 0.0)

    def pcpu(rate, cputime: float, el: float) -> float:
        if rate is not None and not live:
            return rate
        return cputime * 100.0 / el if el > 0 else 0.0

    procs = []
    for (pid, ppid, pgid, sid, start, name, name_raw, cmd, cmd_raw, exe, state, uid, user, ruid, gid, nice,
         prio, cpu, nlwp, cputime, rss, vms, minflt, majflt, cgroup, tty, rate) in rows:
        el = elapsed(start)
        procs.append(Proc(
            host, pid, pid, ppid, pgid, sid, start, name or "", name_raw, cmd, cmd_raw, exe, state or "?",
            uid, user if user is not None else str(uid), ruid if ruid is not None else uid,
            gid if gid is not None else 0, nice or 0, prio if prio is not None else 20, cpu, nlwp or 1,
            cputime or 0.0, rss or 0, vms or 0, minflt or 0, majflt or 0, cgroup, tty, el, now,
            pcpu(rate, cputime or 0.0, el), mem_total, comm_proc=name or ""))
    if trows is None:
        return procs
    if procs and not trows:
        raise ProcsnapError(f"no threads in the snapshot of {host} at {ts:%Y-%m-%d %H:%M:%S} UTC: "
                            "the recording was made without the threads table (-L and -T need it)")
    by_pid = {p.pid: p for p in procs}
    out = []
    for pid, tid, start, name, name_raw, state, nice, prio, cpu, cputime, minflt, majflt, rate in trows:
        p = by_pid.get(pid)
        if p is None:
            continue
        if tid == pid:
            # as ps: the main thread's line shows the process's counters (its CPU time, faults, %CPU)
            out.append(replace(p, comm=name or p.comm, comm_raw=name_raw, thread=True))
            continue
        el = elapsed(start)
        out.append(replace(p, tid=tid, start=start, comm=name or "", comm_raw=name_raw, state=state or p.state,
                           nice=nice if nice is not None else p.nice,
                           priority=prio if prio is not None else p.priority, processor=cpu,
                           cputime=cputime or 0.0, minflt=minflt or 0, majflt=majflt or 0, elapsed=el,
                           pcpu=pcpu(rate, cputime or 0.0, el), thread=True))
    return out


# --------------------------------------------------------------------------
# Selection


@dataclass
class Me:
    """The caller, for ps's default selection (live host only)."""

    euid: int
    tty: str | None


def me_now() -> Me:
    from recorder.collect.processes import tty_of
    tty = tty_of(os.getpid())
    return Me(os.geteuid(), tty)


def _simple_setup(o: Options, live: bool) -> dict:
    """procps's select_setup: what -a, -d, a, x (or nothing) ask for."""
    s = frozenset(o.simple) - {"g"}
    flags = dict(my_euid=False, my_tty=False, no_leader=False, has_tty=False, all=False)
    if not s:
        flags["my_euid"] = True
        flags["has_tty" if o.prefer_bsd else "my_tty"] = True
        if not live:
            # "the caller" is nobody in a recording: everything
            flags.update(my_euid=False, my_tty=False, has_tty=False)
    elif s == {"-a"}:
        flags.update(no_leader=True, has_tty=True)
    elif s in ({"-d"}, {"-a", "-d"}):
        flags["no_leader"] = True
    elif s == {"a"}:
        flags["has_tty"] = True
    elif s == {"x"}:
        flags["my_euid"] = live
    elif s == {"a", "x"}:
        flags["all"] = True
    else:
        raise UsageError("process selection options conflict (-a/-d with a/x)")
    return flags


def _uids(names: list[str], rows: list[Proc], live: bool) -> set[int]:
    out = set()
    for n in names:
        if n.isdigit():
            out.add(int(n))
            continue
        found = {p.uid for p in rows if p.user == n}
        if live:
            import pwd
            try:
                found.add(pwd.getpwnam(n).pw_uid)
            except KeyError:
                if not found:
                    raise UsageError(f"user name does not exist: {n}") from None
        out |= found
    return out


def _comm_matches(comm: str, want: str) -> bool:
    # as ps: exact, except that a 15-character name (the kernel's limit) matches a longer request
    if len(comm) == 15 and len(want) >= 15:
        return comm == want[:15]
    return comm == want[:63]


def select(rows: list[Proc], o: Options, me: Me | None) -> list[Proc]:
    """ps's want_this_proc over the rows (me is None for a recording)."""
    live = me is not None
    if o.my_tty and not live:
        raise UsageError("T (this terminal) needs the live host")
    s = _simple_setup(o, live)
    euids = _uids(o.euids, rows, live) if o.euids else set()
    ruids = _uids(o.ruids, rows, live) if o.ruids else set()
    pids, ppids, sids, ttys = set(o.pids), set(o.ppids), set(o.sids), set(o.ttys)
    if o.my_tty:
        ttys.add(me.tty)

    def simple_accept(p: Proc) -> bool:
        if s["my_euid"] and p.uid != me.euid:
            return False
        if s["my_tty"] and p.tty != me.tty:
            return False
        if s["no_leader"] and p.sid == p.pid:
            return False
        if s["has_tty"] and p.tty is None:
            return False
        return True

    def listed(p: Proc) -> bool:
        return (p.pid in pids or p.ppid in ppids or p.sid in sids or (bool(ttys) and p.tty in ttys)
                or p.uid in euids or p.ruid in ruids or any(_comm_matches(p.comm_proc, c) for c in o.comms))

    out = []
    for p in rows:
        if o.all or s["all"]:
            ok = True
        elif (o.simple or not o.has_lists) and simple_accept(p):
            ok = True
        else:
            ok = listed(p)
        if o.running and p.state not in ("R", "D"):
            ok = False
        if o.negate:
            ok = not ok
        if ok:
            out.append(p)
    return out


def order(rows: list[Proc], o: Options, ctx: Ctx) -> list[Proc]:
    rows = sorted(rows, key=lambda p: (p.host, p.pid, p.tid))
    for f, desc in reversed(o.sort):
        def k(p, f=f):
            v = f.key(p, ctx)
            return (v is not None, v if v is not None else 0)
        rows.sort(key=k, reverse=desc)
    return rows


# --------------------------------------------------------------------------
# Output


def cell(col: Column, p: Proc, ctx: Ctx, last: bool) -> str:
    from analyze.output import escape  # every column: user, tty, stat, ... come from the recording
    if col.field is None:
        return escape(p.host)
    t = escape(col.field.text(p, ctx))
    if not last:
        if col.just == "U":
            t = t[:col.width]
        elif col.just == "N" and not ctx.numeric_users and len(t) > col.width:
            t = t[:col.width - 1] + "+" if col.width > 1 else str(p.uid)
    return t


# procps formats a line in a buffer of 128 KiB: the last column's text ends there (a command line
# of 200 KB shows its first 128 KiB).
LINE_MAX = 128 * 1024


def _cap(s: str, cells: int) -> str:
    """s cut as procps's escape cuts a value into its 128 KiB buffer and the cells left on the line:
    ASCII may fill the buffer but one byte, a multibyte character must end a byte short of that, and
    no character may run past the line's last cell."""
    limit = LINE_MAX - 1
    if len(s) * 4 < min(limit, cells):
        return s
    used = width = 0
    for n, ch in enumerate(s):
        o = ord(ch)
        if o < 0x80:
            if used + 1 > limit or width + 1 > cells:
                return s[:n]
            used += 1
            width += 1
        else:
            size = len(ch.encode("utf-8", "surrogateescape"))
            w = max(_wcwidth()(o), 0)
            if used + size > limit - 1 or width + w > cells:
                return s[:n]
            used += size
            width += w
    return s


def _line(cols: list[Column], cells: list[str], ctx: Ctx) -> str:
    """A row laid out, its last value cut where ps's line buffer ends."""
    line = layout(cols, cells, ctx)
    if len(line) * 4 < LINE_MAX:
        return line
    start = len(line) - len(cells[-1])
    return line[:start] + _cap(cells[-1], LINE_MAX - start)


def layout(cols: list[Column], cells: list[str], ctx: Ctx) -> str:
    """procps's show_one_proc: each value right- or left-aligned in its column; a value wider than
    its column pushes the rest of the line right until the padding of later columns absorbs it."""
    correct = actual = 0
    dospace = 0
    parts = []
    for n, (c, v) in enumerate(zip(cols, cells)):
        amount = len(v)
        right = c.just == "R" or (c.just == "N" and ctx.numeric_users)
        leftpad = max(c.width - amount, 0) if right else 0
        space = correct - actual + leftpad
        if space < 1:
            space = dospace
        space = min(space, 144)
        parts.append(" " * space + v)
        actual += space + amount
        correct += c.width + 1
        dospace = 1
    return "".join(parts)


def text_table(rows: list[Proc], cols: list[Column], o: Options, ctx: Ctx, out) -> None:
    last = len(cols) - 1
    if not o.no_headers and any(c.head for c in cols):
        out.write(layout(cols, [c.head for c in cols], ctx) + "\n")
    for p in rows:
        out.write(_line(cols, [cell(c, p, ctx, n == last) for n, c in enumerate(cols)], ctx) + "\n")


def records(rows: list[Proc], cols: list[Column], ctx: Ctx) -> tuple[list[str], list[tuple]]:
    keys = [c.key for c in cols]
    vals = [tuple(p.host if c.field is None else c.field.val(p, ctx) for c in cols) for p in rows]
    return keys, vals


def field_list() -> str:
    """`ps L`: the fields, with their headers."""
    return "".join(f"{f.spec:<12.12} {f.head:<8.8}\n" for f in sorted(FIELDS.values(), key=lambda f: f.spec))


# --------------------------------------------------------------------------
# The command


def run(argv: list[str], help_text=None, out=None, err=None) -> int:
    """`procsnap ps ARGS`: print the listing; returns the exit status."""
    from analyze.data.damage import LOSSES
    LOSSES.clear()  # what this answer leaves out, not an earlier one's (when run in a process that ran others)
    out = out or sys.stdout
    err = err or sys.stderr
    o = parse_args(argv)
    if o.help:
        out.write(help_text() if help_text else __doc__)
        out.write("\n")
        return 0
    if o.list_fields:
        out.write(field_list())
        return 0
    from analyze.output import write_guarded
    live = not o.recs
    if live:
        live_only(o.at, o.hosts, "ps")
    else:
        from analyze.data.db import lost_at, moments_for, say_moments
        from analyze.errors import PartialError
        rec, moments = moments_for(o.recs, o.at, o.hosts, "ps")
    columns(o, 5)  # option conflicts are usage errors, before any reading
    threads = bool(o.threads)
    rows: list[Proc] = []
    if live:
        host, now, rows = load_live(o, threads)
        moments = [host]
    else:
        for m in moments:
            got = load(rec, m, threads, live)
            if not got and lost_at(rec, "processes", m):
                raise PartialError(lost_at(rec, "processes", m))
            if not got:
                raise ProcsnapError(f"no processes in the snapshot of {m.host} at {m.ts:%Y-%m-%d %H:%M:%S} UTC: "
                                    "the recording was made without the processes table")
            rows.extend(got)
        say_moments(moments, err)
    ctx = Ctx(numeric_users=o.numeric_users, bsd_c=o.bsd_c, utf8=utf8_locale(),
              page_size=os.sysconf("SC_PAGE_SIZE"), live=live,
              user_names={p.uid: p.user for p in rows})
    if live:
        digits = pid_digits_live()
    else:
        # pid_max is not recorded: ps's 5 digits, or as many as the largest id of the snapshot
        digits = max([5] + [len(str(max(p.pid, p.tid, p.ppid, p.pgid, p.sid))) for p in rows])
    cols = columns(o, digits)
    shown_rows = order(select(rows, o, me_now() if live else None), o, ctx)
    if len(moments) > 1:
        from analyze.output import escape
        hw = max([4] + [len(escape(m.host)) for m in moments])
        cols = [Column(None, "HOST", hw, "host")] + cols

    def write():
        from analyze.data.damage import write_partial
        if o.fmt == "table":
            text_table(shown_rows, cols, o, ctx, out)
            write_partial(out, o.fmt)
        else:
            from analyze.data.damage import render
            keys, vals = records(shown_rows, cols, ctx)
            render(keys, vals, o.fmt, out=out, header=not (o.fmt == "csv" and o.no_headers))

    write_guarded(out, write)
    return 0 if shown_rows else 1
