"""ps's selection (its want_this_proc: -e, the lists, the caller's processes on its terminal,
-N, r) and ordering (--sort, k)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from analyze.commands.matching import comm_matches
from analyze.commands.ps.arguments import Options
from analyze.commands.ps.values import Ctx, Proc
from analyze.errors import UsageError


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
                or p.uid in euids or p.ruid in ruids or any(comm_matches(p.comm_proc, c) for c in o.comms))

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
