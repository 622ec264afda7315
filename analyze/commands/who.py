"""Which processes lsof's -p, -u and -c pick (lists, ^ to exclude, /REGEX/ for -c), for the
commands that select processes of a recording that way without lsof's own listing: diff and
events."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Who:
    """What lsof's -p, -u and -c test of a process (analyze.commands.matching reads these)."""
    pid: int
    uid: int | None
    user: str
    command: str

    @property
    def command_bytes(self) -> bytes:
        return self.command.encode("utf-8", "surrogateescape")


def selection(pids: list[str] | None = None, users: list[str] | None = None, cmds: list[str] | None = None):
    """-p, -u and -c as lsof reads them (its own parser: lists, ^ to exclude, /REGEX/ for -c);
    None when nothing is selected."""
    from analyze.commands.lsof.arguments import Options, apply_option
    o = Options()
    for c, values in (("p", pids), ("u", users), ("c", cmds)):
        for v in values or []:
            apply_option(o, c, v)
    return o if (o.pids or o.xpids or o.users or o.xusers or o.cmds or o.xcmds) else None


def selected(o, pid: int | None, uid: int | None, user: str | None, name: str | None) -> bool:
    """As lsof selects processes: exclusions first, then the selections ORed."""
    if o is None:
        return True
    if pid is None:
        return False
    from analyze.commands.matching import cmd_matches, user_matches
    who = Who(pid, uid, user or "", name or "")
    if pid in o.xpids or any(user_matches(who, u) for u in o.xusers) \
            or any(cmd_matches(who, m) for _, m in o.xcmds):
        return False
    tests = []
    if o.pids:
        tests.append(pid in o.pids)
    if o.users:
        tests.append(any(user_matches(who, u) for u in o.users))
    if o.cmds:
        tests.append(any(cmd_matches(who, m) for _, m in o.cmds))
    return not tests or any(tests)
