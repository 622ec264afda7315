"""``procsnap lsof``: lsof's options, selection and output, over any moment.

The command line is lsof's own (4.95, Linux), parsed here by hand because its
options do not fit an ordinary parser (``+D DIR``, ``-sTCP:LISTEN``, ``-i``
with an optional value, ``-Ki``, grouped flags such as ``-nPi``). The rows
come from ``open_files`` joined with ``processes`` (COMMAND, USER) and, for
network selections, ``sockets``; they are read from one snapshot per host:
the live host now, or a recording at ``--at``.

Selection follows lsof's rules:

* the exclusions (``-p ^PID``, ``-u ^USER``, ``-c ^CMD`` and the TCP states of
  ``-s``) are applied first, whatever else is given;
* then each kind of selection (pids, users, commands, internet addresses,
  unix sockets, fds, names) is one ORed set of its values, and the sets are
  ORed together, or ANDed when ``-a`` is given;
* with no selection at all every file is listed.

A ``-s TCP:...`` state list acts, as in lsof on Linux, on every TCP and UDP
file (an unconnected UDP socket is in state CLOSE, a connected one
ESTABLISHED): inclusions drop the TCP/UDP files in other states, exclusions
drop those in the listed states; other files are not affected, so ``-i`` is
what restricts the listing to network files (``-i -sTCP:LISTEN``).

Names (file and directory arguments, ``+d``, ``+D``) match the recorded NAME
path, which is what a recording can offer; on the live host a file argument
also matches by device and inode. A mount point selects every file on its
file system (``-f`` turns that off), as lsof does: live by the device of the
file system, from a recording by the mount point recorded with each file
(``open_files.mount_point``); a device file is on the mount point its path
lies under.

The listing is lsof's, column for column (COMMAND cut at 9 characters,
names escaped as lsof escapes them); with several hosts a HOST column comes
first. ``-f csv`` and ``-f json`` give the same values under the names of
:data:`COLUMNS` (COMMAND in full, NAME without lsof's escaping; CSV escapes control
characters by :mod:`analyze.output`'s rule, JSON through its encoder).

Exit status as lsof: 1 when a search item was not found: a pid, command,
name, ``-i`` address, ``-s`` state or login name that was asked for, any file
of a ``+d``/``+D`` directory (on the live host; a recording cannot know the
directory's contents, so there: nothing under it listed), and any ``-c ^CMD``
(lsof 4.95 counts those as never found); ``-Q`` ignores them. Nothing listed is
no error by itself. 0 otherwise.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat
import sys
from dataclasses import dataclass, field

from analyze.errors import ProcsnapError, UsageError, live_only

TCP_STATES = ("ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
              "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "CLOSED")
INET_PROTOS = ("TCP", "UDP", "UDPLITE")
INET_TYPES = ("IPv4", "IPv6")
FORMATS = ("table", "csv", "json")
COLUMNS = ("command", "pid", "user", "fd", "type", "device", "size_off", "node", "name")

# lsof options procsnap knows but does not implement: a clear message, not "unknown".
UNSUPPORTED = {
    "b": "avoid kernel blocks", "C": "name cache", "D": "device cache", "e": "exempt file systems",
    "E": "endpoint info", "F": "field output", "g": "process groups", "L": "link counts", "m": "mount supplement",
    "M": "portmapper", "N": "NFS files", "o": "offsets", "O": "overhead", "r": "repeat mode", "R": "parent pids",
    "S": "stat timeout", "T": "TCP info", "v": "version", "V": "verbose search", "x": "cross mounts",
    "X": "skip TCP and UDP", "Z": "security contexts",
}


# --------------------------------------------------------------------------
# Options


@dataclass
class InetSpec:
    """One ``-i`` value: ``[46][PROTO][@HOST][:PORT[,PORT|-RANGE]]`` (empty: all)."""

    text: str
    af: int | None = None            # 4 or 6
    proto: str | None = None         # TCP, UDP, UDPLITE
    addrs: list | None = None        # [(af, packed address)]; None = any
    ports: list | None = None        # [(lo, hi)]; None = any

    def matches(self, s: "Inet") -> bool:
        if self.proto and (s.proto or "").upper() != self.proto:
            return False
        if self.af and s.af != self.af:
            return False
        if self.addrs is None and self.ports is None:
            return True
        return self._end(s, s.laddr, s.lport) or self._end(s, s.raddr, s.rport)

    def _end(self, s: "Inet", addr: bytes | None, port: int | None) -> bool:
        if self.addrs is not None:
            # as lsof: an all-zero address stands for any address
            if not any(af == s.af and (a == addr or not any(a)) for af, a in self.addrs):
                return False
        if self.ports is not None:
            if port is None or not any(lo <= port <= hi for lo, hi in self.ports):
                return False
        return True


@dataclass
class FdSet:
    """A ``-d`` list: names (cwd, mem, …) and number ranges, inclusion or exclusion."""

    text: str
    exclude: bool
    names: set = field(default_factory=set)
    ranges: list = field(default_factory=list)
    all_numbers: bool = False        # the pseudo name "fd"

    def contains(self, fd: str, fd_num) -> bool:
        if fd_num is not None:
            return self.all_numbers or any(lo <= fd_num <= hi for lo, hi in self.ranges)
        return fd in self.names

    def matches(self, fd: str, fd_num) -> bool:
        return self.contains(fd, fd_num) != self.exclude


@dataclass
class NameSpec:
    """A file or directory argument (kind "file"), +d DIR ("dir") or +D DIR ("tree")."""

    text: str
    kind: str
    paths: list                       # candidate absolute paths, bytes
    dev_ino: tuple | None = None      # live host: (device text, inode) of the file itself
    fs_dev: str | None = None         # live host, a mount point: its device
    walk: bytes | None = None         # live host, +d/+D: the directory whose files are search items
    mount: list | None = None         # a file argument that may name a mount point: its paths

    def matches(self, path: bytes | None, r: "Row") -> bool:
        if path is not None:
            for p in self.paths:
                if path == p:
                    return True
                if self.kind == "dir" and os.path.dirname(path) == p:
                    return True
                if self.kind == "tree" and path.startswith(p if p.endswith(b"/") else p + b"/"):
                    return True
        if self.dev_ino is not None and r.inode is not None and (r.device, r.inode) == self.dev_ino \
                and r.type not in _SOCKET_TYPES:
            return True
        if self.mount is not None and r.type not in _SOCKET_TYPES:
            # a mount point: every file on its file system. Live, by the device of the file system
            # (a character or block device file's DEVICE is the device it is: by the mount point
            # its path lies under); from a recording, by the recorded mount point.
            if self.fs_dev is not None and r.type not in ("CHR", "BLK"):
                return r.device == self.fs_dev
            return r.mount_point is not None and os.fsencode(r.mount_point) in self.mount
        return False


@dataclass
class Options:
    pids: list = field(default_factory=list)
    xpids: set = field(default_factory=set)
    users: list = field(default_factory=list)
    xusers: list = field(default_factory=list)
    cmds: list = field(default_factory=list)      # [(text, prefix bytes | compiled regex)]
    xcmds: list = field(default_factory=list)
    inet: list = field(default_factory=list)      # [InetSpec]
    unix: bool = False
    fds: list = field(default_factory=list)       # [FdSet]
    names: list = field(default_factory=list)     # [NameSpec] (resolved later)
    name_args: list = field(default_factory=list)  # [(kind, text)]
    tcp_in: set = field(default_factory=set)
    tcp_ex: set = field(default_factory=set)
    and_: bool = False
    terse: bool = False
    uid_numbers: bool = False
    size_only: bool = False
    files_only: bool = False                      # -f: names are files, never file systems
    ignore_missing: bool = False                  # -Q
    known_users: set = field(default_factory=set)  # -u login names known (live: passwd; recorded: processes)
    cmd_width: int = 9
    fmt: str | None = None
    recs: list = field(default_factory=list)
    at: str | None = None
    hosts: list = field(default_factory=list)
    help: bool = False


# Options that take a value: mandatory (the rest of the group, or the next
# argument) or optional (the rest of the group, or the next argument when it
# does not start with - or +).
_MANDATORY = set("pucd")
_OPTIONAL = set("isK")


def parse_args(argv: list[str]) -> Options:
    """Parse lsof's command line (plus --rec/--at/--host/-f) into Options."""
    o = Options()
    i = 0
    only_names = False

    def next_value(opt: str) -> str:
        nonlocal i
        if i + 1 >= len(argv):
            raise UsageError(f"{opt} needs a value")
        i += 1
        return argv[i]

    while i < len(argv):
        a = argv[i]
        if only_names or a == "-" or a == "+" or not (a.startswith("-") or a.startswith("+")):
            o.name_args.append(("file", a))
        elif a == "--":
            only_names = True
        elif a.startswith("--"):
            key, eq, val = a.partition("=")
            if key not in ("--rec", "--at", "--host", "--format", "--help"):
                raise UsageError(f"unknown option {key} (procsnap lsof --help lists the options)")
            if key == "--help":
                o.help = True
            else:
                val = val if eq else next_value(key)
                if key == "--rec":
                    o.recs.append(val)
                elif key == "--at":
                    o.at = val
                elif key == "--host":
                    o.hosts.append(val)
                else:
                    o.fmt = _format(val)
        elif a.startswith("+"):
            _plus(o, a, next_value)
        else:
            j = 1
            while j < len(a):
                c = a[j]
                rest = a[j + 1:]
                if c in _MANDATORY:
                    val = rest if rest else next_value(f"-{c}")
                    apply_option(o, c, val)
                    break
                if c in _OPTIONAL:
                    if rest:
                        val = rest
                    elif c == "K":
                        val = None
                        if i + 1 < len(argv) and argv[i + 1] == "i":
                            i += 1
                            val = "i"
                    elif i + 1 < len(argv) and argv[i + 1][:1] not in ("-", "+"):
                        i += 1
                        val = argv[i]
                    else:
                        val = None
                    _optional(o, c, val)
                    break
                if c == "f":
                    # procsnap's -f FORMAT (a lowercase word), or lsof's -f (names are files, not file systems)
                    if rest and rest[0] in "gG":
                        raise UsageError(f"-f{rest[0]} (file flags) is not supported by procsnap lsof")
                    if rest:
                        o.fmt = _format(rest)
                        break
                    if i + 1 < len(argv) and re.fullmatch(r"[a-z]+", argv[i + 1]):
                        i += 1
                        o.fmt = _format(argv[i])
                        break
                    o.files_only = True
                elif c == "a":
                    o.and_ = True
                elif c == "t":
                    o.terse = True
                elif c in "nPw":
                    pass  # output is always numeric; no warnings to suppress
                elif c == "l":
                    o.uid_numbers = True
                elif c == "U":
                    o.unix = True
                elif c == "Q":
                    o.ignore_missing = True
                elif c in "h?":
                    o.help = True
                elif c in UNSUPPORTED:
                    raise UsageError(f"-{c} ({UNSUPPORTED[c]}) is not supported by procsnap lsof")
                else:
                    raise UsageError(f"unknown option -{c} (procsnap lsof --help lists the options)")
                j += 1
        i += 1
    for kind, text in o.name_args:
        if not text:
            raise UsageError("empty file name")
    return o


def _format(v: str) -> str:
    if v not in FORMATS:
        raise UsageError(f"bad format {v!r}: use table, csv or json")
    return v


def _plus(o: Options, a: str, next_value) -> None:
    c, rest = a[1:2], a[2:]
    if c in ("D", "d"):
        o.name_args.append(("tree" if c == "D" else "dir", rest or next_value(f"+{c}")))
    elif c == "c":
        v = rest or next_value("+c")
        if not v.isdigit():
            raise UsageError(f"+c: bad COMMAND width {v!r}: use a number (0 for all)")
        w = int(v)
        o.cmd_width = 0 if w == 0 else max(w, len("COMMAND"))
    elif c == "w" and not rest:
        pass
    elif c in UNSUPPORTED or c in ("f", "e", "L", "m", "M", "r"):
        raise UsageError(f"+{c} is not supported by procsnap lsof")
    else:
        raise UsageError(f"unknown option {a} (procsnap lsof --help lists the options)")


def _split(v: str, opt: str) -> list[str]:
    items = v.split(",")
    if any(x == "" or x == "^" for x in items):
        raise UsageError(f"{opt}: empty item in {v!r}")
    return items


def apply_option(o: Options, c: str, v: str) -> None:
    """Option C with its value V into O, as lsof reads it (diff selects with the same rules)."""
    if c == "p":
        for x in _split(v, "-p"):
            ex = x.startswith("^")
            n = x[1:] if ex else x
            if not n.isdigit():
                raise UsageError(f"-p: illegal process ID: {x}")
            (o.xpids.add(int(n)) if ex else o.pids.append(int(n)))
    elif c == "u":
        for x in _split(v, "-u"):
            if x.startswith("^"):
                o.xusers.append(x[1:])
            else:
                o.users.append(x)
    elif c == "c":
        ex = v.startswith("^")
        t = v[1:] if ex else v
        if not t:
            raise UsageError("-c: empty command")
        (o.xcmds if ex else o.cmds).append((v, _cmd_matcher(t)))
    elif c == "d":
        o.fds.append(_fdset(v))


def _cmd_matcher(t: str):
    m = re.fullmatch(r"/(.*)/([bix]*)", t, re.S)
    if m and len(t) > 2:
        flags = re.I if "i" in m.group(2) else 0
        try:
            return re.compile(m.group(1), flags)
        except re.error as e:
            raise UsageError(f"-c: bad regular expression {t!r}: {e}") from None
    return os.fsencode(t)


def _fdset(v: str) -> FdSet:
    items = _split(v, "-d")
    ex = [x.startswith("^") for x in items]
    if any(ex) and not all(ex):
        bad = next(x for x, e in zip(items, ex) if e != ex[0])
        raise UsageError(f"-d: {'exclude in an include' if not ex[0] else 'include in an exclude'} list: {bad}")
    s = FdSet(v, exclude=ex[0])
    for x in items:
        x = x.lstrip("^")
        m = re.fullmatch(r"(\d+)-(\d+)", x)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo >= hi:
                raise UsageError(f"-d: FD range's low >= its high: {x}")
            s.ranges.append((lo, hi))
        elif x.isdigit():
            s.ranges.append((int(x), int(x)))
        elif x == "fd":
            s.all_numbers = True
        else:
            s.names.add(x)
    return s


def _optional(o: Options, c: str, v: str | None) -> None:
    if c == "i":
        o.inet.append(parse_inet(v or ""))
    elif c == "s":
        if v is None:
            o.size_only = True
        else:
            parse_states(o, v)
    elif c == "K":
        if v != "i":
            raise UsageError("-K (list tasks) is not supported: procsnap lsof lists processes; -K i is accepted")


def parse_states(o: Options, v: str) -> None:
    proto, colon, states = v.partition(":")
    if proto.upper() == "UDP":
        raise UsageError(f"no UDP state names available: {v} (as lsof on Linux; use -sTCP:STATE)")
    if proto.upper() != "TCP":
        raise UsageError(f'unknown -s protocol: "{proto if colon else v}"')
    if not states:
        raise UsageError(f"-s: no state names after {proto}:")
    for x in states.split(","):
        ex = x.startswith("^")
        name = (x[1:] if ex else x).upper()
        if name not in TCP_STATES:
            raise UsageError(f"unknown TCP state name: {x.lstrip('^')}")
        (o.tcp_ex if ex else o.tcp_in).add(name)
    both = o.tcp_in & o.tcp_ex
    if both:
        raise UsageError(f"can't include and exclude TCP state: {sorted(both)[0]}")


def parse_inet(text: str) -> InetSpec:
    """Parse one ``-i`` value as lsof does; raises UsageError."""
    spec = InetSpec(text)
    s = text
    where = f"in: -i {text}"
    if s[:1] in ("4", "6"):
        spec.af = int(s[0])
        s = s[1:]
    m = re.match(r"[A-Za-z]+", s)
    if m:
        p = m.group(0).upper()
        if p not in INET_PROTOS:
            raise UsageError(f"unknown protocol name ({m.group(0)}) {where}")
        spec.proto = p
        s = s[m.end():]
    if s.startswith("@"):
        s = s[1:]
        if s.startswith("["):
            end = s.find("]")
            if end < 0:
                raise UsageError(f"missing ] in IPv6 address {where}")
            host, s = s[1:end], s[end + 1:]
            spec.addrs = [(6, _addr(host, 6, where))]
        else:
            host, _, rest = s.partition(":")
            s = ":" + rest if _ else ""
            if not host:
                raise UsageError(f"missing host name or address after @ {where}")
            spec.addrs = _resolve(host, spec.af, where)
        if spec.af:
            spec.addrs = [a for a in spec.addrs if a[0] == spec.af]
            if not spec.addrs:
                raise UsageError(f"address family mismatch {where}")
    if s.startswith(":"):
        spec.ports = _ports(s[1:], spec.proto, where)
    elif s:
        if spec.proto is None and spec.addrs is None:
            raise UsageError(f"unknown protocol name ({s}) {where}")
        raise UsageError(f"unexpected {s!r} {where}")
    return spec


def _addr(text: str, af: int, where: str) -> bytes:
    try:
        a = ipaddress.ip_address(text)
    except ValueError:
        raise UsageError(f"bad IPv{af} address ({text}) {where}") from None
    if a.version != af:
        raise UsageError(f"bad IPv{af} address ({text}) {where}")
    return a.packed


def _resolve(host: str, af: int | None, where: str) -> list:
    try:
        a = ipaddress.ip_address(host)
        return [(a.version, a.packed)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, {4: socket.AF_INET, 6: socket.AF_INET6}.get(af, socket.AF_UNSPEC))
    except (socket.gaierror, UnicodeError):
        raise UsageError(f"unknown host name ({host}) {where}") from None
    out = []
    for fam, *_, sa in infos:
        a = ipaddress.ip_address(sa[0].split("%")[0])
        if (a.version, a.packed) not in out:
            out.append((a.version, a.packed))
    return out


def _ports(text: str, proto: str | None, where: str) -> list:
    """lsof's port list: items split at commas; an item that starts with a digit is a port or a
    range ``LO-HI`` (HI a number or a service name without a hyphen); any other item is one
    service name, hyphens included (``http-alt``, ``ftp-data``)."""
    if not text:
        raise UsageError(f"missing port after : {where}")
    out = []
    for item in text.split(","):
        if not item:
            raise UsageError(f"bad port ({item}) {where}")
        if not item[0].isdigit():
            lo = hi = _port(item, proto, where)
        else:
            m = re.fullmatch(r"([0-9]+)(?:-(.*))?", item, re.S)
            if not m or (m.group(2) is not None and (not m.group(2) or "-" in m.group(2))):
                raise UsageError(f"unacceptable port specification in: -i :{text}")
            lo = _port(m.group(1), proto, where)
            hi = _port(m.group(2), proto, where) if m.group(2) is not None else lo
        if hi < lo:
            raise UsageError(f"port range's low > its high ({item}) {where}")
        out.append((lo, hi))
    return out


def _port(t: str, proto: str | None, where: str) -> int:
    if t.isdigit():
        n = int(t)
        if n > 65535:
            raise UsageError(f"bad port ({t}) {where}")
        return n
    for p in ([proto.lower()] if proto else ["tcp", "udp"]):
        try:
            return socket.getservbyname(t, "udp" if p == "udplite" else p)
        except (OSError, ValueError):  # ValueError: a NUL or a character the C library cannot take
            continue
    raise UsageError(f"unknown service {t} {where}")


# --------------------------------------------------------------------------
# Rows


_SOCKET_TYPES = ("IPv4", "IPv6", "unix", "sock", "netlink", "pack", "raw", "raw6")


@dataclass
class Inet:
    """Addresses of an internet socket, from `sockets` (or parsed from NAME)."""

    af: int
    proto: str | None
    laddr: bytes | None
    lport: int | None
    raddr: bytes | None
    rport: int | None
    state: str | None


@dataclass
class Row:
    host: str
    pid: int
    fd: str
    fd_num: int | None
    mode: str | None
    type: str
    device: str | None
    size: int | None
    pos: int | None
    inode: int | None
    proto: str | None
    name: str
    name_raw: bytes | None
    deleted: bool
    mount_point: str | None = None   # of the file system holding the file (see recorder.collect.descriptors.Mounts)
    command: str = ""
    command_raw: bytes | None = None
    user: str = ""
    uid: int | None = None
    inet: Inet | None = None
    unix_path: bytes | None = None
    unix_state: str | None = None

    @property
    def name_bytes(self) -> bytes:
        return self.name_raw if self.name_raw is not None else self.name.encode("utf-8", "surrogateescape")

    @property
    def command_bytes(self) -> bytes:
        return self.command_raw if self.command_raw is not None else self.command.encode("utf-8", "surrogateescape")

    def path(self) -> bytes | None:
        """The file path NAME stands for, or None (pipes, anonymous inodes, deleted files, denied rows)."""
        if self.deleted or self.type in ("unknown", "IPv4", "IPv6", "sock", "netlink", "pack", "raw", "raw6",
                                         "a_inode"):
            return None
        if self.type == "unix":
            if self.unix_path is not None:
                return self.unix_path if self.unix_path.startswith(b"/") else None
            p = self.name_bytes.split(b" type=", 1)[0]
            return p if p.startswith(b"/") else None
        b = self.name_bytes
        return b if b.startswith(b"/") else None

    def tcp_state(self) -> str | None:
        """The state lsof's -s compares: TCP's, and UDP's as the kernel has it (CLOSE or ESTABLISHED)."""
        s = self.inet
        if s is None or s.state is None or (s.proto or "").upper() not in ("TCP", "UDP"):
            return None
        st = s.state.upper()
        return "CLOSE" if st == "UNCONN" else st


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


# --------------------------------------------------------------------------
# Selection


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


def user_matches(r: Row, u: str) -> bool:
    """Whether R's owner is U: a uid when U is all digits, else a login name."""
    if u.isdigit():
        return r.uid == int(u)
    return r.user == u


def cmd_matches(r: Row, m) -> bool:
    """Whether R's command matches a -c item: a prefix (bytes) or a /regular expression/."""
    if isinstance(m, bytes):
        return r.command_bytes.startswith(m)
    return m.search(r.command) is not None


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
    held = {(r.device, r.inode) for r in rows if r.inode is not None and r.type not in _SOCKET_TYPES}

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


# --------------------------------------------------------------------------
# Output


def _safe(text: str, raw: bytes | None, space: bool = False) -> list[str]:
    """lsof's printable form, one token per source character: \\n \\t \\r \\b \\f, ^X for
    other control characters, \\xNN for every other unprintable byte (invalid UTF-8,
    DEL, each byte of an unprintable character); with space=True a space is
    unprintable too (lsof's COMMAND)."""
    b = raw if raw is not None else text.encode("utf-8", "surrogateescape")
    s = b.decode("utf-8", "surrogateescape")
    out = []
    for ch in s:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:           # a byte that is not UTF-8
            out.append(f"\\x{o - 0xDC00:02x}")
        elif o < 0x20:
            out.append({8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}.get(o, "^" + chr(o + 0x40)))
        elif ch == " " and space:
            out.append("\\x20")
        elif not ch.isprintable() and ch != " ":
            out.append("".join(f"\\x{x:02x}" for x in ch.encode("utf-8", "surrogateescape")))
        else:
            out.append(ch)
    return out


def lsof_escape(text: str, raw: bytes | None = None) -> str:
    return "".join(_safe(text, raw))


def lsof_command(text: str, raw: bytes | None = None, width: int = 9) -> str:
    """COMMAND as lsof prints it: escaped (spaces too), cut at `width` printed characters."""
    out, n = [], 0
    for tok in _safe(text, raw, space=True):
        if width and n + len(tok) > width:
            break
        out.append(tok)
        n += len(tok)
    return "".join(out)


def fd_text(r: Row) -> str:
    """FD as lsof prints it, without the mode: numbers and cwd/rtd in 4 columns, * for > 9999."""
    fd = r.fd
    if r.fd_num is not None or fd.isdigit():
        return fd.rjust(4) if len(fd) <= 4 else "*" + fd[-3:]
    if fd in ("cwd", "rtd"):
        return fd.rjust(4)
    return fd


def size_off(r: Row, size_only: bool = False) -> str:
    if size_only:
        return "" if r.size is None else str(r.size)
    if r.size is not None:
        return str(r.size)
    if r.pos is not None:
        return f"0t{r.pos}" if r.pos < 10 ** 8 else f"0x{r.pos:x}"
    return ""


def node(r: Row) -> str:
    if r.type in INET_TYPES and r.proto:
        return r.proto
    return "" if r.inode is None else str(r.inode)


def _udp_blank(r: Row) -> str:
    """lsof ends a UDP socket's NAME with the blank where TCP has its (STATE)."""
    if r.type in INET_TYPES and (r.proto or "").upper() in ("UDP", "UDPLITE") and not r.name.endswith((")", " ")):
        return " "
    return ""


def text_table(rows: list[Row], o: Options, out) -> None:
    """lsof's listing: COMMAND and NAME left-aligned, the other columns right-aligned."""
    hosts = len({r.host for r in rows}) > 1
    size_title = "SIZE" if o.size_only else "SIZE/OFF"
    from analyze.output import escape  # every column: user, mode, type, device, ... come from the recording
    cells = []
    for r in rows:
        cells.append(tuple(map(escape, (
            r.host,
            lsof_command(r.command, r.command_raw, o.cmd_width),
            str(r.pid),
            str(r.uid) if o.uid_numbers and r.uid is not None else r.user,
            fd_text(r),
            r.mode or " ",
            r.type,
            r.device or "",
            size_off(r, o.size_only),
            node(r),
            lsof_escape(r.name, r.name_raw) + _udp_blank(r),
        ))))
    head = ("HOST", "COMMAND", "PID", "USER", "FD", " ", "TYPE", "DEVICE", size_title, "NODE", "NAME")
    w = [max([len(head[i])] + [len(c[i]) for c in cells]) for i in range(len(head))]
    if o.uid_numbers:
        w[3] = max(w[3], 8)  # lsof's -l USER column

    def line(c):
        parts = [c[1].ljust(w[1]), c[2].rjust(w[2]), c[3].rjust(w[3]),
                 c[4].rjust(w[4]) + c[5] + " ", c[6].rjust(w[6]), c[7].rjust(w[7]), c[8].rjust(w[8]),
                 c[9].rjust(w[9]), c[10]]
        if hosts:
            parts.insert(0, c[0].ljust(w[0]))
        return " ".join(parts)

    out.write(line(head) + "\n")
    for c in cells:
        out.write(line(c) + "\n")


# What -f json adds to COLUMNS, as typed values (csv and the listing keep lsof's text only).
JSON_COLUMNS = ("inode", "protocol", "local_addr", "local_port", "remote_addr", "remote_port", "state")


def _addr_text(b: bytes | None) -> str | None:
    return None if b is None else str(ipaddress.ip_address(b))


def socket_fields(r: Row) -> tuple:
    """JSON_COLUMNS of a row: the inode (a socket's too, which lsof shows in DEVICE); for an
    internet socket its protocol, local and remote address and port (remote NULL when it has no
    peer: a listener or an unconnected UDP socket) and state (ss's names: LISTEN, ESTABLISHED,
    UNCONN, ...); for a unix socket its bound path as local_addr, and its state. NULL where a row
    has none."""
    s = r.inet
    if s is not None:
        peer = s.raddr is not None and (any(s.raddr) or bool(s.rport))
        return (r.inode, (s.proto or r.proto or "").upper() or None, _addr_text(s.laddr), s.lport,
                _addr_text(s.raddr) if peer else None, s.rport if peer else None, s.state)
    if r.type == "unix":
        path = r.unix_path.decode("utf-8", "surrogateescape") if r.unix_path is not None else None
        return (r.inode, None, path, None, None, None, r.unix_state)
    return (r.inode, None, None, None, None, None, None)


def records(rows: list[Row], o: Options) -> tuple[list[str], list[tuple]]:
    """The csv/json columns: the same text as the listing (COMMAND in full, NAME without lsof's
    escaping); json adds JSON_COLUMNS."""
    hosts = len({r.host for r in rows}) > 1
    typed = o.fmt == "json"
    cols = (["host"] if hosts else []) + list(COLUMNS) + (list(JSON_COLUMNS) if typed else [])
    out = []
    for r in rows:
        v = (r.command, r.pid, str(r.uid) if o.uid_numbers and r.uid is not None else r.user,
             r.fd + (r.mode or ""), r.type, r.device or "", size_off(r, o.size_only), node(r), r.name)
        out.append(((r.host,) if hosts else ()) + v + (socket_fields(r) if typed else ()))
    return cols, out


# --------------------------------------------------------------------------
# The command


def run(argv: list[str], help_text=None, out=None, err=None) -> int:
    """`procsnap lsof ARGS`: print the listing; returns the exit status."""
    from analyze.data.damage import LOSSES
    LOSSES.clear()  # what this answer leaves out, not an earlier one's (when run in a process that ran others)
    out = out or sys.stdout
    err = err or sys.stderr
    o = parse_args(argv)
    if o.help:
        out.write(help_text() if help_text else __doc__)
        out.write("\n")
        return 0
    if o.recs:
        from analyze.data.db import lost_at, moments_for, say_moments
        rec, moments = moments_for(o.recs, o.at, o.hosts, "lsof")
    else:
        live_only(o.at, o.hosts, "lsof")
        rec = moments = None
    warned = []

    def warn(msg):
        warned.append(msg)
        if not o.ignore_missing:
            err.write(f"procsnap: {msg}\n")

    if rec is not None:
        rows = load(rec, moments, o)
        lost = [why for m in moments if (why := lost_at(rec, "open_files", m))]
        if not rows and lost and not has_files(rec, moments):
            from analyze.errors import PartialError
            raise PartialError(lost[0])
        if not rows and not has_files(rec, moments):
            raise ProcsnapError("no open files in the snapshot" + ("s" if len(moments) > 1 else "")
                                + " used: the recording was made without the open_files table")
        say_moments(moments, err)
        resolve_names(o, live=False, warn=warn)
        if any(not u.isdigit() for u in o.users):
            o.known_users = known_users(rec, moments)
    else:
        resolve_names(o, live=True, warn=warn)
        rows = live_rows(o)
    if rec is not None and any(n.mount for n in o.names) and rows and all(r.mount_point is None for r in rows
                                                                          if r.type not in _SOCKET_TYPES):
        err.write("procsnap: the recording has no mount points (an older procsnap made it): "
                  "file arguments select by name only\n")
    res = select(rows, o)

    from analyze.data.damage import LOSSES, render, write_partial

    def write():
        if o.terse:
            seen = set()
            for r in res.rows:
                if (r.host, r.pid) not in seen:
                    seen.add((r.host, r.pid))
                    out.write(f"{r.pid}\n")
        elif res.rows:
            if o.fmt in (None, "table"):
                text_table(res.rows, o, out)
                write_partial(out, "table")
            else:
                cols, vals = records(res.rows, o)
                render(cols, vals, o.fmt, out=out)
        elif o.fmt == "json":  # nothing found: still a JSON document ([], or what could not be read)
            render(list(records([], o)[0]), [], o.fmt, out=out)
        elif LOSSES:
            write_partial(out, o.fmt or "table")

    # `procsnap lsof | head`: when the reader is gone there is nothing more to say.
    from analyze.output import write_guarded
    write_guarded(out, write)
    if o.ignore_missing:
        return 0
    return 1 if (res.missing or warned) else 0
