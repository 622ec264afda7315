"""lsof's columns: their names (:data:`COLUMNS`, :data:`JSON_COLUMNS`) and the text of each cell
as lsof prints it (escaping, COMMAND width, FD, SIZE/OFF, NODE, the socket fields of ``-f json``)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

INET_TYPES = ("IPv4", "IPv6")
SOCKET_TYPES = ("IPv4", "IPv6", "unix", "sock", "netlink", "pack", "raw", "raw6")
COLUMNS = ("command", "pid", "user", "fd", "type", "device", "size_off", "node", "name")


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


def udp_blank(r: Row) -> str:
    """lsof ends a UDP socket's NAME with the blank where TCP has its (STATE)."""
    if r.type in INET_TYPES and (r.proto or "").upper() in ("UDP", "UDPLITE") and not r.name.endswith((")", " ")):
        return " "
    return ""


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
