"""ps's fields: :data:`FIELDS`, each field's names, header, width, alignment, text, value and
sort key, what a snapshot cannot give (:data:`NOT_RECORDED`), and the formats -o/--sort name
them in (:func:`parse_format`, :func:`parse_sort`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from analyze.commands.ps.values import (Ctx, Proc, args_text, fmt_bsdstart, fmt_bsdtime, fmt_etime, fmt_lstart, fmt_pcpu,
                                         fmt_pmem, fmt_start, fmt_stime, fmt_time, group_name, is_rt, ruser_name, secs,
                                         shown, start_secs, stat_text)


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
_f("etimes", "ELAPSED", 7, "R", lambda p, c: str(secs(p.elapsed)), lambda p, c: secs(p.elapsed),
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
_f("times cputimes", "TIME", 8, "R", lambda p, c: str(secs(p.cputime)), lambda p, c: secs(p.cputime),
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


