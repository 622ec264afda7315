"""lsof's rows: one :class:`Row` per open file, read from a recording at its moments (``open_files``
joined with ``processes`` and, for network selections, ``sockets``) or from the live host now."""

from __future__ import annotations

import ipaddress
import re

from analyze.commands.lsof.arguments import Options
from analyze.commands.lsof.fields import INET_TYPES, Inet, Row


def _packed(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        return _PACKED[text]
    except KeyError:
        pass
    try:
        b = ipaddress.ip_address(text.split("%")[0]).packed
    except ValueError:
        b = None
    if len(_PACKED) < 100_000:
        _PACKED[text] = b
    return b


# Addresses already packed: a host's sockets share few of them (loopback, its own addresses), and
# ipaddress takes longer than anything else done per socket row.
_PACKED: dict[str, bytes | None] = {}


def _parse_inet_name(name: str, typ: str, proto: str | None) -> Inet:
    """Addresses from lsof's NAME (127.0.0.1:80->10.0.0.1:5000 (ESTABLISHED), *:80, [::1]:53)."""
    af = 4 if typ == "IPv4" else 6
    zero = bytes(4 if af == 4 else 16)
    state = None
    m = re.fullmatch(r"(.*?)(?: \(([A-Z_0-9]+)\))?\s*", name)
    body, state = (m.group(1), m.group(2)) if m else (name, None)

    def end(t: str):
        host, _, port = t.rpartition(":")
        if host == "*":
            addr = zero
        else:
            addr = _packed(host[1:-1] if host.startswith("[") else host)
        return addr, (int(port) if port.isdigit() else None)

    local, arrow, remote = body.partition("->")
    la, lp = end(local)
    ra, rp = end(remote) if arrow else (None, None)
    return Inet(af, proto, la, lp, ra, rp, state)


def recorded_plan(o: "Options | None") -> tuple[set | None, bool]:
    """What a listing from a recording must read: (only these pids, or all; only socket
    descriptors), as :func:`live_plan`, but only where reading less cannot change the exit
    status: the "not found" checks of -p and -c look at every row the exclusions keep, so a -c
    (with another selection) reads everything, and -i/-U narrow only without -p."""
    if o is None:
        return None, False
    pids, sockets_only = live_plan(o)
    kinds = [bool(o.pids), bool(o.users), bool(o.cmds), bool(o.inet or o.unix), bool(o.fds), bool(o.names)]
    if sum(kinds) > 1 and o.cmds:
        return None, False
    if pids is not None:
        sockets_only = False
    return pids, sockets_only


def inet_ports(o: "Options") -> list[tuple[int, int]] | None:
    """The port ranges a network selection lists only on: when every -i names ports and no -U
    is given; None otherwise."""
    if not o.inet or o.unix or any(s.ports is None for s in o.inet):
        return None
    return [(int(lo), int(hi)) for s in o.inet for lo, hi in s.ports]


# The TYPEs a -i or -U selection can list (an Inet is made for IPv4 and IPv6 rows only).
SOCKET_SELECTABLE = ("IPv4", "IPv6", "unix")


def load(rec, moments, o: "Options | None" = None) -> list[Row]:
    """The rows of open_files (with their process and socket) of the given snapshots; with the
    options O, only those the options can select (see :func:`recorded_plan`): an empty list then
    says nothing of whether the recording has open_files at all (see :func:`has_files`)."""
    where, params = "", {}
    if moments is not None:
        if not moments:
            return []
        where, params = _moments_where(moments)
    pids, sockets_only = recorded_plan(o)
    narrowed = pids is not None or sockets_only
    fwhere, fparams = where, params
    if pids is not None:
        fwhere, fparams = _and(where, "list_contains($pids, pid)"), {**params, "pids": sorted(pids)}
    elif sockets_only:
        fwhere = _and(where, "type IN (" + ", ".join(f"'{t}'" for t in SOCKET_SELECTABLE) + ")")
        ports = inet_ports(o)
        if ports is not None:
            cond, extra = _on_ports(rec, where, params, ports)
            fwhere, fparams = _and(fwhere, cond), {**params, **extra}
    _, files = rec.execute(
        "SELECT host, pid, fd, fd_num, mode, type, device, size, pos, inode, proto, name, name_raw, deleted, "
        f"mount_point FROM open_files{fwhere}", fparams)
    swhere = pwhere = where
    sparams = pparams = params
    if narrowed:
        # Only the sockets and processes these rows are joined with (see build_rows): a socket
        # by (pid, fd), else by inode in any process's row.
        fpids = sorted({f[1] for f in files if f[1] is not None})
        swhere = _and(where, "(list_contains($fpids, pid) OR list_contains($finodes, inode))")
        sparams = {**params, "fpids": fpids, "finodes": sorted({f[9] for f in files if f[9] is not None})}
        pwhere, pparams = _and(where, "list_contains($fpids, pid)"), {**params, "fpids": fpids}
    _, procs = rec.execute(f"SELECT host, pid, name, name_raw, \"user\", uid FROM processes{pwhere}", pparams)
    _, socks = rec.execute(
        "SELECT host, pid, fd, inode, family, proto, local_addr, local_port, remote_addr, remote_port, state, "
        f"unix_path, unix_path_raw FROM sockets{swhere}", sparams)
    return build_rows(procs, socks, files)


# Up to this many ports, one regular expression finds them in NAME; past it, each number is compared.
_PORTS_IN_RE = 64


def _on_ports(rec, where: str, params: dict, ports: list[tuple[int, int]]) -> tuple[str, dict]:
    """A condition on open_files keeping every row whose address can be on one of PORTS, as
    build_rows gives it: from its socket (found by pid and fd, or by inode: the pids and inodes of
    the sockets on those ports) or read from NAME (any number after a colon; a name that is not
    ASCII is kept, as Python reads more digits than [0-9])."""
    def on(col):
        return "(" + " OR ".join(f"{col} BETWEEN {lo} AND {hi}" for lo, hi in ports) + ")"
    hit = _and(where, f"({on('local_port')} OR {on('remote_port')})")
    _, hits = rec.execute(f"SELECT DISTINCT pid, inode FROM sockets{hit}", params)
    if sum(hi - lo + 1 for lo, hi in ports) <= _PORTS_IN_RE:
        numbers = "|".join(str(n) for lo, hi in ports for n in range(lo, hi + 1))
        named = f"regexp_matches(name, ':0*({numbers})([^0-9]|$)')"
    else:
        named = (f"EXISTS (SELECT 1 FROM unnest(regexp_extract_all(name, ':([0-9]+)', 1)) AS n(x) "
                 f"WHERE {on('TRY_CAST(x AS BIGINT)')})")
    cond = (f"type IN ('IPv4', 'IPv6') AND ({named} OR strlen(name) <> length(name) "
            "OR list_contains($port_pids, pid) OR list_contains($port_inodes, inode))")
    return cond, {"port_pids": sorted({p for p, _ in hits if p is not None}),
                  "port_inodes": sorted({i for _, i in hits if i is not None})}


def known_users(rec, moments) -> set:
    """The user names of the snapshots' processes: the login names a recording knows."""
    if not moments:
        return set()
    where, params = _moments_where(moments)
    _, rows = rec.execute(f'SELECT DISTINCT "user" FROM processes{where}', params)
    return {u for u, in rows if u is not None}


def has_files(rec, moments) -> bool:
    """Whether the snapshots have any open_files row (a recording made without the table has none)."""
    if not moments:
        return False
    where, params = _moments_where(moments)
    _, rows = rec.execute(f"SELECT 1 FROM open_files{where} LIMIT 1", params)
    return bool(rows)


def _moments_where(moments) -> tuple[str, dict]:
    parts, params = [], {}
    for n, m in enumerate(moments):
        parts.append(f"(host = $h{n} AND snapshot_id = $s{n})")
        params[f"h{n}"] = m.host
        params[f"s{n}"] = m.snapshot_id
    return " WHERE (" + " OR ".join(parts) + ")", params


def _and(where: str, cond: str) -> str:
    return f"{where} AND {cond}" if where else f" WHERE {cond}"


def build_rows(procs, socks, files) -> list[Row]:
    """Rows from processes (host, pid, name, name_raw, user, uid), sockets (host, pid, fd, inode,
    family, proto, local_addr, local_port, remote_addr, remote_port, state, unix_path,
    unix_path_raw) and open_files (host, pid, fd, fd_num, mode, type, device, size, pos, inode,
    proto, name, name_raw, deleted): from a recording's views, or straight from a live collection."""
    pinfo = {(h, pid): (name, raw, user, uid) for h, pid, name, raw, user, uid in procs}
    by_fd, by_inode = {}, {}
    for s in socks:
        host, pid, fd, inode = s[:4]
        if pid is not None and fd is not None:
            by_fd[(host, pid, fd)] = s
        if inode:
            by_inode.setdefault((host, inode), s)
    rows = []
    for f in files:
        r = Row(*f[:11], f[11] or "", f[12], bool(f[13]), f[14] if len(f) > 14 else None)
        p = pinfo.get((r.host, r.pid))
        if p is not None:
            r.command, r.command_raw, r.user, r.uid = p[0] or "", p[1], p[2] or "", p[3]
        s = None
        if r.type in INET_TYPES or r.type == "unix":
            s = by_fd.get((r.host, r.pid, r.fd_num)) if r.fd_num is not None else None
            if s is None and r.inode:
                s = by_inode.get((r.host, r.inode))
            if s is not None and s[4] != r.type:
                s = None
        if r.type in INET_TYPES:
            if s is not None:
                r.inet = Inet(4 if r.type == "IPv4" else 6, s[5] or r.proto, _packed(s[6]), s[7], _packed(s[8]),
                              s[9], s[10])
            else:
                r.inet = _parse_inet_name(r.name, r.type, r.proto)
        elif r.type == "unix" and s is not None:
            r.unix_state = s[10]
            if s[11] is not None:
                r.unix_path = s[12] if s[12] is not None else s[11].encode("utf-8", "surrogateescape")
        rows.append(r)
    return rows


def live_plan(o: Options) -> tuple[set | None, bool]:
    """What a live listing must read: (only these pids, or all; only socket descriptors). Selections
    are ORed unless -a: a lone -p (or -p with -a) needs only its processes, a lone -i/-U (or with -a)
    only sockets."""
    kinds = [bool(o.pids), bool(o.users), bool(o.cmds), bool(o.inet or o.unix), bool(o.fds), bool(o.names)]
    narrowing = o.and_ or sum(kinds) == 1
    pids = {int(p) for p in o.pids} if o.pids and narrowing else None
    return pids, bool(o.inet or o.unix) and narrowing


def live_rows(o: Options) -> list[Row]:
    """The live host's rows for these options, read without Arrow or DuckDB (a one-shot lsof must
    start fast) and only as far as the options need."""
    from recorder.collect.collector import Collector
    pids, sockets_only = live_plan(o)
    c = Collector(tables=("processes", "open_files", "sockets"), redact=False)  # nothing reaches disk: print what lsof prints
    procs, files, socks = c.live_files(pids, sockets_only)
    h = c.host
    n = len(socks["pid"])
    sock_rows = zip([h] * n, *(socks[k] for k in ("pid", "fd", "inode", "family", "proto", "local_addr", "local_port",
                                                  "remote_addr", "remote_port", "state", "unix_path",
                                                  "unix_path_raw")))
    rows = files.rows
    mounts = files.mounts.column(*zip(*((r[5], r[6], r[11]) for r in rows))) if files.mounts and rows \
        else [None] * len(rows)
    return build_rows([(h, r["pid"], r["name"], r["name_raw"], r["user"], r["uid"]) for r in procs], sock_rows,
                      [(h, r[0], *r[2:], m) for r, m in zip(rows, mounts)])
