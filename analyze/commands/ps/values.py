"""ps's rows (:class:`Proc`, one line of ps) and the text of their values as procps-ng 4.0 prints
them: times, percentages, dates, STAT, command names and lines (escaped as ps escapes them for
the locale), user and group names."""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from dataclasses import dataclass, field

# procps formats a line in a buffer of 128 KiB: the last column's text ends there (a command line
# of 200 KB shows its first 128 KiB).
LINE_MAX = 128 * 1024


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


def wcwidth():
    """The C library's wcwidth (cells of a character), or a close stand-in without it."""
    import unicodedata
    return _libc("wcwidth", lambda o: 2 if unicodedata.east_asian_width(chr(o)) in "WF" else
                 0 if unicodedata.combining(chr(o)) else 1)


def secs(x: float) -> int:
    """Whole seconds of a float sum of clock ticks (0.7 + 0.3 is 1 here, as in ticks)."""
    return max(int(math.floor(x + 1e-6)), 0)


def fmt_time(seconds: float) -> str:
    """TIME: [DD-]HH:MM:SS of CPU time."""
    t = secs(seconds)
    dd, t = divmod(t, 86400)
    hh, t = divmod(t, 3600)
    mm, ss = divmod(t, 60)
    return (f"{dd}-" if dd else "") + f"{hh:02d}:{mm:02d}:{ss:02d}"


def fmt_etime(seconds: float) -> str:
    """ELAPSED: [[DD-]HH:]MM:SS."""
    t = secs(seconds)
    dd, t = divmod(t, 86400)
    hh, t = divmod(t, 3600)
    mm, ss = divmod(t, 60)
    out = f"{dd}-" if dd else ""
    if dd or hh:
        out += f"{hh:02d}:"
    return out + f"{mm:02d}:{ss:02d}"


def fmt_bsdtime(seconds: float) -> str:
    """TIME of BSD formats (aux): M:SS, minutes right-aligned in 3."""
    u = secs(seconds)
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
