"""The sockets table, and what lsof shows of a socket descriptor.

:func:`read_tables` reads the socket tables (/proc/PID/net/{tcp,udp,unix,…}) of
each network namespace that holds sockets into a :class:`SocketIndex` (the inet
ones through the C module, or psutil without it: :func:`psutil_inet`): for each
socket, what its descriptors show in lsof (:meth:`SocketIndex.resolution`) and
its ``sockets`` row. :meth:`SocketIndex.columns` gives the ``sockets`` table,
one row per (socket, owner), and one with a NULL owner for sockets nobody holds.
"""

from __future__ import annotations

import os

from recorder.source import procfs as P
from recorder.source.procfs import Denied, Gone, ProcFS


SOCKET_FIELDS = ("pid", "fd", "start_time", "inode", "netns", "family", "proto", "sock_type", "local_addr",
                 "local_port", "remote_addr", "remote_port", "state", "rx_queue", "tx_queue", "uid", "unix_path",
                 "unix_path_raw")

# The socket table of each protocol name the kernel gives a socket (its system.sockprotoname;
# current kernels name unix stream sockets UNIX-STREAM, datagram and seqpacket ones UNIX).
PROTO_TABLE = {"TCP": "tcp", "TCPv6": "tcp6", "UDP": "udp", "UDPv6": "udp6", "UDPLITE": "udplite",
               "UDPLITEv6": "udplite6", "RAW": "raw", "RAWv6": "raw6", "UNIX": "unix", "UNIX-STREAM": "unix",
               "NETLINK": "netlink", "PACKET": "packet"}

class SocketsTable:
    """The sockets table of a snapshot: its columns (SOCKET_FIELDS) and how many socket tables
    were refused."""
    __slots__ = ("columns", "denied")

    def __init__(self, columns: dict[str, list], denied: int):
        self.columns = columns
        self.denied = denied


class SocketIndex:
    """The sockets of the tables read: by inode, what its descriptors' rows get (resolution); and,
    when made with OWNERS, the sockets table, appended a column at a time as the tables are read
    (no tuple per socket kept: tens of thousands at a busy host)."""

    def __init__(self, owners=None):
        self.by_inode: dict[int, tuple] = {}
        self.denied = 0
        # OWNERS: (inode, pid, fd number, start_time) of each socket descriptor.
        self._held: dict[int, tuple | list] | None = None
        self._owned: list[list] = [[] for _ in SOCKET_FIELDS]
        self._unowned: list[list] = [[] for _ in SOCKET_FIELDS]  # inode-0 sockets (TIME_WAIT, …), last
        if owners is not None:
            held = self._held = {}
            for inode, pid, fd, start in owners:  # a tuple for one holder, a list of them for more
                h = held.get(inode)
                if h is None:
                    held[inode] = (pid, fd, start)
                elif type(h) is tuple:
                    held[inode] = [h, (pid, fd, start)]
                else:
                    h.append((pid, fd, start))

    def resolution(self, inode: int) -> tuple | None:
        """What a descriptor of this socket shows in lsof: (TYPE, DEVICE, proto, NAME, NAME's raw
        bytes or None); None for a socket in no table read."""
        return self.by_inode.get(inode)

    def add_records(self, records: list, ns) -> None:
        """(resolution, socket row) pairs, as the C module's inet_records, unix_records and
        psutil_inet give them, or parsed dicts (netlink, packet)."""
        by_inode, held = self.by_inode, self._held
        nobody = ((None, None, None),)
        for rec in records:
            if type(rec) is dict:
                rec["netns"] = ns
                rec = (_resolution(rec), _socket_row(rec))
            base = rec[1]
            inode = base[0]
            if not inode:  # 0, or None where psutil gave a socket no owner (so no inode)
                cols, holders = self._unowned, nobody
            elif inode in by_inode:
                continue
            else:
                by_inode[inode] = rec[0]
                h = held.get(inode) if held is not None else None
                cols, holders = self._owned, (h,) if type(h) is tuple else (h or nobody)
            if held is None:
                continue
            for h in holders:
                for col, v in zip(cols, h):
                    col.append(v)
                for col, v in zip(cols[3:], base):
                    col.append(v)

    def columns(self) -> dict[str, list]:
        """The sockets table as columns (SOCKET_FIELDS; boot_id is added by the caller): one row per
        (socket, owning descriptor), and one with no owner for a socket nobody holds; empty for
        an index made without owners. The columns are let go."""
        cols = {f: a + b for f, a, b in zip(SOCKET_FIELDS, self._owned, self._unowned)}
        self._owned = self._unowned = [[] for _ in SOCKET_FIELDS]
        return cols

    def read_namespace(self, fs: ProcFS, parts: tuple, ns, native=None, only: set | None = None,
                       protos: set | None = None) -> None:
        """Every socket table of a network namespace; with ONLY (inodes), just those sockets, from
        the tables of their PROTOS (sockprotoname values; None: every table): `lsof -p PID`
        needs a few lines of tables that can hold tens of thousands."""
        find = line_finder(only) if only is not None else None
        tables = _tables_of(protos) if only is not None else None

        def read(name):
            try:
                data = fs.read(*parts, name)
                return find(data, name) if find is not None and data else data
            except Denied:
                self.denied += 1
            except Gone:
                pass
            return None

        # The inet tables are parsed by the C module only (without it, read_tables asks psutil).
        for name, proto, v6 in P.NET_TABLES if native is not None else ():
            if tables is not None and name not in tables:
                continue
            data = read(name)
            if data:
                self.add_records(native.inet_records(data, proto, v6, ns), ns)
        if tables is None or "unix" in tables:
            data = read("unix")
            if data:
                try:
                    self.add_records(unix_records(data, ns), ns)
                except ValueError:
                    pass
        for name, parser in (("netlink", P.parse_netlink), ("packet", P.parse_packet)):
            if tables is not None and name not in tables:
                continue
            data = read(name)
            if data:
                try:
                    self.add_records(parser(data), ns)
                except ValueError:
                    pass


def read_tables(fs: ProcFS, native, socket_pids, only: set | None = None, protos: set | None = None,
                owners=None, descriptors=()) -> SocketIndex:
    """The socket tables of every network namespace among these processes' (SOCKET_PIDS: the
    pids that hold sockets), each read once through one process in it; the recorder's own
    namespace is always read (unowned sockets too). ONLY and PROTOS: see read_namespace; OWNERS:
    see SocketIndex (the sockets table is made only with them). Without the C module the inet
    sockets come from psutil (psutil_inet), of the recorder's namespace only, joined to the socket
    DESCRIPTORS read ((inode, pid, fd number, start_time) each, as OWNERS)."""
    idx = SocketIndex(owners)
    if only is not None and not only:
        return idx  # the named processes hold no socket
    seen_ns: set = set()
    for who in ("self", *socket_pids):
        try:
            ns = os.stat(fs.path(who, "ns", "net")).st_ino
        except OSError:
            ns = None
        if ns is not None and ns in seen_ns:
            continue
        if ns is None and who != "self":
            continue
        if ns is not None:
            seen_ns.add(ns)
        if native is None and who == "self":
            records = psutil_inet(fs, descriptors, ns, only, socket_pids if only is not None else None)
            if records is None:
                idx.denied += 1
            else:
                idx.add_records(records, ns)
        idx.read_namespace(fs, (who, "net"), ns, native, only, protos)
    return idx


def psutil_inet(fs: ProcFS, descriptors, ns, only: set | None = None, pids=None) -> list[tuple] | None:
    """(resolution, socket row) of each TCP and UDP socket of the recorder's network namespace
    as psutil's net_connections gives them (read under FS's root; the C module's inet_records is
    the one parser of those tables), in namespace NS; None when psutil was refused. psutil gives
    each socket's first owning (pid, fd), no inode: the inode is that of the descriptor the fd
    loop read there (DESCRIPTORS: (inode, pid, fd number, start_time) each), None for a socket
    with no owner read. It gives no queues and no uid (None here), and does not read the udplite
    and raw tables. With PIDS (the named processes of
    `lsof -p`), each one's own sockets, ONLY those with these inodes."""
    import psutil  # only without the C module
    import socket
    inode_of = {(pid, fd): inode for inode, pid, fd, _ in descriptors}
    saved = psutil.PROCFS_PATH
    psutil.PROCFS_PATH = fs.root
    conns = []
    try:
        if pids is None:
            conns = [(c.pid, c) for c in psutil.net_connections(kind="inet")]
        else:
            for pid in pids:
                try:
                    conns += [(pid, c) for c in psutil.Process(pid).net_connections(kind="inet")]
                except psutil.Error:  # gone, or its descriptors refused: its sockets stay unresolved
                    continue
    except (psutil.Error, OSError) as e:
        if isinstance(P.translate(e), Denied):
            return None
    except (RuntimeError, ValueError, KeyError):  # a line psutil cannot read: the kernel does not write one
        pass
    finally:
        psutil.PROCFS_PATH = saved
    out = []
    # in the C module's order of the tables: tcp, tcp6, udp, udp6
    conns.sort(key=lambda pc: (pc[1].type != socket.SOCK_STREAM, pc[1].family != socket.AF_INET,
                               pc[0] is None, pc[0] or 0, pc[1].fd))
    for pid, c in conns:
        inode = inode_of.get((pid, c.fd)) if pid is not None else None
        if inode is not None and not _still(fs, pid, c.fd, inode):
            inode = None  # the descriptor changed between the fd loop and psutil's reading: not this socket's
        if only is not None and inode not in only:
            continue
        tcp, v4 = c.type == socket.SOCK_STREAM, c.family == socket.AF_INET
        # psutil gives no endpoint where the kernel's port is 0: an unbound or unconnected side, whose
        # address the kernel keeps unspecified; a UDP socket is connected (ss: ESTAB) when it has a peer
        none = "0.0.0.0" if v4 else "::"
        s = {"family": "IPv4" if v4 else "IPv6", "proto": "TCP" if tcp else "UDP",
             "sock_type": "STREAM" if tcp else "DGRAM", "inode": inode, "netns": ns,
             "local_addr": c.laddr.ip if c.laddr else none, "local_port": c.laddr.port if c.laddr else 0,
             "remote_addr": c.raddr.ip if c.raddr else none, "remote_port": c.raddr.port if c.raddr else 0,
             "state": c.status if tcp else ("ESTABLISHED" if c.raddr else "UNCONN"),
             "rx_queue": None, "tx_queue": None, "uid": None}
        out.append((_resolution(s), _socket_row(s)))
    return out


def _still(fs: ProcFS, pid: int, fd: int, inode: int) -> bool:
    """Whether /proc/PID/fd/FD still is socket INODE: the fd loop read it before psutil did, and
    it is read again after, so that a descriptor closed and reused in between is not joined to a
    socket it no longer (or did not yet) hold."""
    try:
        return os.readlink(fs.path(pid, "fd", fd)) == f"socket:[{inode}]"
    except OSError:
        return False


def proto_name(fd_path: str) -> str | None:
    """The protocol the kernel names a socket descriptor by (system.sockprotoname), or None."""
    try:
        return os.getxattr(fd_path, "system.sockprotoname").decode("ascii", "replace").rstrip("\0")
    except OSError:
        return None


def _tables_of(protos: set | None) -> set | None:
    """The tables that can hold sockets of these protocols: None (all) when a protocol is unknown."""
    if protos is None or not protos <= PROTO_TABLE.keys():
        return None
    return {PROTO_TABLE[p] for p in protos}


# The column (0-based, blank-separated) holding the socket's inode in each /proc/net table.
INODE_COLUMN = {**{name: 9 for name, _, _ in P.NET_TABLES}, "unix": 6, "netlink": 9, "packet": 8}


def line_finder(inodes: set):
    """A function keeping, of a /proc/net table (by name), its header line and the lines whose
    inode column holds one of these inode numbers: one split per line, whatever the number of
    inodes (a bytes.find per inode rescans the whole table for each)."""
    wanted = {b"%d" % i for i in inodes}

    def find(data: bytes, name: str) -> bytes:
        column = INODE_COLUMN[name]
        lines = data.split(b"\n")
        keep = [lines[0]]
        for line in lines[1:]:
            f = line.split(None, column + 1)
            if len(f) > column and f[column] in wanted:
                keep.append(line)
        return b"\n".join(keep) + b"\n"
    return find


def unix_records(data: bytes, ns) -> list[tuple]:
    """(resolution, socket row) of each socket of /proc/net/unix in namespace ns."""
    out = []
    for s in P.parse_unix(data):
        s["netns"] = ns
        out.append((_resolution(s), _socket_row(s)))
    return out


def _resolution(s: dict) -> tuple:
    """What a descriptor of this socket shows in lsof: (TYPE, DEVICE, proto, NAME, NAME's raw
    bytes or None)."""
    fam = s["family"]
    device = proto = raw = None
    typ = fam
    if fam in ("IPv4", "IPv6", "pack") and s["inode"] is not None:
        device = str(s["inode"])
    elif fam == "unix":
        device = "0x" + s["kaddr"]
    if fam in ("IPv4", "IPv6", "pack"):
        proto = s["proto"]
    name = P.lsof_socket_name(s)
    if fam == "unix" and s.get("path") is not None:
        text, lossy = P.split_text(s["path"])
        if lossy is not None:
            raw = lossy + name[len(text):].encode()
    return typ, device, proto, name, raw


def _socket_row(s: dict) -> tuple:
    """A socket's columns after (pid, fd, start_time), in SOCKET_FIELDS order."""
    fam = s["family"]
    inet = fam in ("IPv4", "IPv6")
    proto = None if fam in ("unix", "pack") else s.get("proto")
    state = s.get("state") if fam in ("IPv4", "IPv6", "unix") else None
    if inet:
        addrs = (s["local_addr"], s["local_port"], s["remote_addr"], s["remote_port"], s["rx_queue"], s["tx_queue"])
    else:
        addrs = (None, None, None, None, None, None)
    path = raw = None
    if fam == "unix" and s.get("path") is not None:
        path, raw = P.split_text(s["path"])
    return (s["inode"], s.get("netns"), fam, proto, s.get("sock_type"), addrs[0], addrs[1], addrs[2], addrs[3], state,
            addrs[4], addrs[5], s.get("uid"), path, raw)
