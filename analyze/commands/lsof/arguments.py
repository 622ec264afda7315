"""lsof's command line: its options, parsed by hand into :class:`Options`.

lsof's options do not fit an ordinary parser (``+D DIR``, ``-sTCP:LISTEN``, ``-i``
with an optional value, ``-Ki``, grouped flags such as ``-nPi``); this module reads them as
lsof 4.95 does, resolves ``-i`` addresses and ports, and says what is not supported."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field

from analyze.commands.lsof.fields import Inet, Row, SOCKET_TYPES
from analyze.commands.matching import cmd_matcher
from analyze.errors import UsageError

TCP_STATES = ("ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
              "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "CLOSED")
INET_PROTOS = ("TCP", "UDP", "UDPLITE")
FORMATS = ("table", "csv", "json")

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
                and r.type not in SOCKET_TYPES:
            return True
        if self.mount is not None and r.type not in SOCKET_TYPES:
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
        (o.xcmds if ex else o.cmds).append((v, cmd_matcher(t)))
    elif c == "d":
        o.fds.append(_fdset(v))


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
