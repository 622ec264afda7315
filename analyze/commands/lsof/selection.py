"""lsof's selection: name arguments resolved, then its exclusion and inclusion rules applied to
the rows (see the package's docstring), in lsof's order."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from analyze.commands.lsof.arguments import NameSpec, Options
from analyze.commands.lsof.fields import SOCKET_TYPES, Row
from analyze.commands.matching import cmd_matches, user_matches

def resolve_names(o: Options, live: bool, warn) -> None:
    """Turn name arguments into NameSpecs: absolute paths, and on the live host device and inode."""
    o.names = []
    for kind, text in o.name_args:
        b = os.fsencode(text)
        paths = [os.path.normpath(os.path.abspath(b))]
        real = os.path.realpath(b)
        if real not in paths:
            paths.append(real)
        spec = NameSpec(text, kind, paths)
        if live:
            try:
                st = os.stat(b)
            except OSError as e:
                warn(f"status error on {text}: {e.strerror}")
                spec.paths = []
                o.names.append(spec)
                continue
            if kind != "file":
                if stat.S_ISDIR(st.st_mode):
                    spec.walk = b
                else:
                    warn(f"not a directory: {text}")
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                spec.dev_ino = (f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}", st.st_ino)
            else:
                spec.dev_ino = (f"{os.major(st.st_dev)},{os.minor(st.st_dev)}", st.st_ino)
            if kind == "file" and not o.files_only and stat.S_ISDIR(st.st_mode) and os.path.ismount(b):
                spec.fs_dev = f"{os.major(st.st_dev)},{os.minor(st.st_dev)}"
                spec.mount = paths
        elif kind == "file" and not o.files_only:
            spec.mount = paths  # a mount point if the recorder saw one there
        o.names.append(spec)
    if live:
        import pwd
        for u in o.users:
            if not u.isdigit():
                try:
                    pwd.getpwnam(u)
                    o.known_users.add(u)
                except (KeyError, ValueError):
                    from analyze.output import escape
                    warn(f"can't get UID for {escape(u)}")


@dataclass
class Result:
    rows: list
    missing: list            # search items that found nothing (text)


def select(rows: list[Row], o: Options) -> Result:
    """Apply lsof's exclusions, then its ORed (or, with -a, ANDed) selections."""
    kept = []
    for r in rows:
        if r.pid in o.xpids or any(user_matches(r, u) for u in o.xusers) \
                or any(cmd_matches(r, m) for _, m in o.xcmds):
            continue
        if o.tcp_in or o.tcp_ex:
            st = r.tcp_state()
            if st is not None and (st in o.tcp_ex or (o.tcp_in and st not in o.tcp_in)):
                continue
        kept.append(r)
    # search items found at the process level (as lsof: a pid or command that exists counts)
    pids_seen = {r.pid for r in kept}
    missing = [str(p) for p in dict.fromkeys(o.pids) if p not in pids_seen]
    for text, m in o.cmds:
        if not any(cmd_matches(r, m) for r in kept):
            missing.append(text)

    tests = []
    if o.pids:
        pids = set(o.pids)
        tests.append(lambda r: r.pid in pids)
    if o.users:
        tests.append(lambda r: any(user_matches(r, u) for u in o.users))
    if o.cmds:
        tests.append(lambda r: any(cmd_matches(r, m) for _, m in o.cmds))
    if o.inet or o.unix:
        # -i and -U are both network selections: one ORed set
        def net(r):
            if o.unix and r.type == "unix":
                return True
            return r.inet is not None and any(s.matches(r.inet) for s in o.inet)
        tests.append(net)
    if o.fds:
        tests.append(lambda r: any(s.matches(r.fd, r.fd_num) for s in o.fds))
    if o.names:
        tests.append(lambda r: any(n.matches(r.path(), r) for n in o.names))
    combine = all if o.and_ else any
    out = [r for r in kept if not tests or combine(t(r) for t in tests)]

    for s in o.inet:
        if not any(r.inet is not None and s.matches(r.inet) for r in out):
            missing.append(f"-i {s.text}".rstrip())
    for n in o.names:
        if not any(n.matches(r.path(), r) for r in out):
            missing.append(n.text)
        elif n.walk is not None and not _tree_listed(n, out):
            missing.append(n.text)
    for u in o.users:
        # as lsof: a login name that is no user is an error (the live host's users, or those a
        # snapshot's processes ran as: see known_users); a user without files is not
        if not u.isdigit() and u not in o.known_users:
            missing.append(u)
    # lsof 4.95 counts every -c ^CMD as a search item it never finds: exit 1 whatever is listed
    missing.extend(text for text, _ in o.xcmds)
    for st in sorted(o.tcp_in):
        if not any(r.tcp_state() == st for r in out):
            missing.append(f"TCP:{st}")
    out.sort(key=_order)
    return Result(out, missing)


def _tree_listed(n: NameSpec, rows: list[Row]) -> bool:
    """Whether every file of a +d DIR (DIR and its entries) or +D DIR (the whole tree) is open in a
    listed row, by device and inode: lsof makes each of them a search item, so one that nobody
    has open makes it exit 1. Symbolic links are not followed and are no search items."""
    held = {(r.device, r.inode) for r in rows if r.inode is not None and r.type not in SOCKET_TYPES}

    def key(st):
        dev = st.st_rdev if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else st.st_dev
        return f"{os.major(dev)},{os.minor(dev)}", st.st_ino

    top = n.walk
    try:
        if key(os.stat(top)) not in held:
            return False
    except OSError:
        return False
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_symlink():
                    continue
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            if key(st) not in held:
                return False
            if n.kind == "tree" and stat.S_ISDIR(st.st_mode):
                stack.append(e.path)
    return True


_FD_RANK = {"cwd": 0, "rtd": 1, "txt": 2, "mem": 3, "DEL": 3}


def _order(r: Row):
    if r.fd_num is not None:
        return (r.host, r.pid, 5, r.fd_num)
    return (r.host, r.pid, _FD_RANK.get(r.fd, 4), 0)
