"""lsof's rows for descriptors, and the socket tables they are resolved against.

:class:`FileRows` accumulates one snapshot's ``open_files`` rows during the
process pass; socket descriptors stay pending until :class:`SocketIndex` has
read the socket tables of each network namespace, then get lsof's TYPE,
DEVICE and NAME. :meth:`SocketIndex.rows` gives the ``sockets`` rows, one per
(socket, owner), and one with a NULL owner for sockets nobody holds.
"""

from __future__ import annotations

import os
import stat

from recorder.source import procfs as P
from recorder.source.procfs import Denied, Gone, ProcFS
from recorder.collect.tables import to_arrow


_TYPES = (
    (stat.S_ISREG, "REG"), (stat.S_ISDIR, "DIR"), (stat.S_ISCHR, "CHR"), (stat.S_ISBLK, "BLK"),
    (stat.S_ISFIFO, "FIFO"), (stat.S_ISLNK, "LINK"), (stat.S_ISSOCK, "SOCK"),
)


def file_type(mode: int) -> str:
    for test, name in _TYPES:
        if test(mode):
            return name
    return "unknown"


# The stored columns of an open_files row, in the order FileRows keeps them (boot_id, snapshot_id
# and ts are the same for every row of a snapshot and are added when the table is built).
FIELDS = ("pid", "start_time", "fd", "fd_num", "mode", "type", "device", "size", "pos", "inode", "proto",
          "name", "name_raw", "deleted")
_PID, _START, _FD, _FDNUM, _MODE, _TYPE, _DEVICE, _SIZE, _POS, _INODE, _PROTO, _NAME, _RAW, _DELETED = range(14)

# Anonymous inodes that the kernel backs with its one shared inode (fs/anon_inodes.c,
# anon_inode_getfile): every descriptor of these kinds stats the same, so one stat per snapshot
# serves them all. Others (io_uring, secretmem, …) may have an inode each and are stat'ed.
SHARED_ANON = frozenset((b"anon_inode:[eventpoll]", b"anon_inode:[eventfd]", b"anon_inode:[timerfd]",
                         b"anon_inode:inotify", b"anon_inode:[signalfd]", b"anon_inode:[fanotify]"))


class Mounts:
    """The mount table of the recorder's mount namespace (/proc/self/mountinfo), to tell on
    which mount point the file system of each open file is mounted: what lsof compares when a
    file argument is a mount point (the file's device, that of the file system holding it).

    A device mounted more than once (bind mounts) stands for its first whole mount (root /);
    a character or block device file, whose DEVICE is the device it is (st_rdev), is on the
    mount point under which its path lies (the deepest; the last mounted of stacked ones)."""

    def __init__(self, data: bytes):
        from recorder.source.procfs import parse_mountinfo
        self.by_dev: dict[str, str] = {}
        self.points: dict[bytes, str] = {}   # mount point -> device, the visible (last) mount
        whole: dict[str, str] = {}
        for m in parse_mountinfo(data):
            point = m["mount_point"]
            try:
                text = point.decode("utf-8")  # a mount point that is not UTF-8 is not stored
            except ValueError:
                continue
            dev = f"{m['major']},{m['minor']}"
            self.by_dev.setdefault(dev, text)
            if m["root"] == b"/":
                whole.setdefault(dev, text)
            self.points[point] = dev
        self.by_dev.update(whole)
        self._deepest = sorted(self.points, key=len, reverse=True)
        self._of_path: dict[str, str | None] = {}  # device files: a few paths (/dev/null) many times

    def of_path(self, path: str) -> str | None:
        """The mount point a path lies under (the path itself when it is one)."""
        try:
            return self._of_path[path]
        except KeyError:
            pass
        p = self._of_path[path] = self._lookup(path)
        return p

    def _lookup(self, path: str) -> str | None:
        if not path.startswith("/"):
            return None
        b = path.encode("utf-8", "surrogateescape")
        for p in self._deepest:
            if b == p or b.startswith(p if p.endswith(b"/") else p + b"/"):
                return p.decode("utf-8")
        return None

    def column(self, types, devices, names) -> list:
        """The mount_point of each row (TYPE, DEVICE, NAME): by device, by path for CHR and BLK."""
        by_dev = self.by_dev.get
        return [self.of_path(n) if t == "CHR" or t == "BLK" else (by_dev(d) if d is not None else None)
                for t, d, n in zip(types, devices, names)]

    def arrow_column(self, t):
        """column() over an Arrow table's rows, a value per distinct DEVICE rather than per row
        (tens of thousands of rows share a few devices)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        dev = pc.dictionary_encode(t.column("device").combine_chunks())
        by_dev = self.by_dev.get
        values = pa.array([by_dev(d) for d in dev.dictionary.to_pylist()], pa.string())
        out = values.take(dev.indices)
        special = pc.fill_null(pc.is_in(t.column("type"), value_set=pa.array(["CHR", "BLK"])), False)
        if pc.any(special).as_py():
            names = t.column("name").filter(special).to_pylist()
            out = pc.replace_with_mask(out, special.combine_chunks() if hasattr(special, "combine_chunks")
                                       else special, pa.array([self.of_path(x) if x else None for x in names],
                                                              pa.string()))
        return out


class FileRows:
    """One snapshot's open_files rows, as tuples in FIELDS order (a socket's row is a list until
    :meth:`resolve` fills in what the socket tables say). Columns, not dicts: at tens of thousands
    of descriptors per snapshot the per-row dict and the per-column lookups were a third of the
    cost of collecting them."""

    def __init__(self, chunk: int | None = None, schema=None):
        self.rows: list = []
        self.gone = 0
        self.denied = 0
        self.socket_pids: list[int] = []
        self.sockets: list[tuple[list, str]] = []  # (the row, /proc/PID/fd/N) of each socket row
        # With chunk (and the table's Arrow schema), rows become Arrow columns every chunk rows
        # (flush(), between processes), so a snapshot never holds all its rows as Python tuples;
        # socket rows wait as lists until resolve(), and to_table() puts them last.
        self.chunk = chunk
        self._types = {f.name: f.type for f in schema} if schema is not None else None
        self._batches: list = []
        self._sock_rows: list[list] = []
        self._exe: dict[int, tuple[str, int]] = {}
        self._devs: dict[int, str] = {}
        self.shared_stat: dict[bytes, object] = {}  # SHARED_ANON name, or b"pipe" -> a stat of one
        self.native_shared: dict[str, tuple] = {}  # the same for recorder/source/_native.c: (dev, size, ino)
        self.mounts: Mounts | None = None          # the mount table, for each row's mount_point

    @property
    def devs(self) -> dict[int, str]:
        return self._devs

    def devstr(self, dev: int) -> str:
        s = self._devs.get(dev)
        if s is None:
            s = self._devs[dev] = f"{os.major(dev)},{os.minor(dev)}"
        return s

    def _add(self, base: tuple, fd: str, fd_num, mode, typ, device, size, pos, inode, name: bytes | str,
             deleted: bool, proto=None) -> None:
        if isinstance(name, bytes):
            try:
                text, raw = name.decode("utf-8"), None
            except UnicodeDecodeError:
                text, raw = P.split_text(name)
        else:
            text, raw = name, None
        self.rows.append((base[0], base[1], fd, fd_num, mode, typ, device, size, pos, inode, proto, text, raw,
                          deleted))

    def add_denied(self, base: tuple, fd: str, fd_num, path: str) -> None:
        self.denied += 1
        self._add(base, fd, fd_num, None, "unknown", None, None, None, None,
                  f"{path} (readlink: Permission denied)", False)

    def add_unknown(self, base: tuple, fd: str, path: str) -> None:
        """What lsof lists for a link that does not resolve (a kernel thread's exe)."""
        self._add(base, fd, None, None, "unknown", None, None, None, None, path, False)

    def add_path(self, base: tuple, fd: str, mode, pos, target: bytes, st) -> None:
        fd_num = int(fd) if fd.isdigit() else None
        if st is None:
            self._add(base, fd, fd_num, mode, "unknown", None, None, pos, None, target, False)
            return
        if target.startswith(b"anon_inode:"):
            self._add(base, fd, fd_num, mode, "a_inode", self.devstr(st.st_dev), st.st_size, None, st.st_ino,
                      target[len(b"anon_inode:"):], False)
            return
        if target.startswith(b"pipe:["):
            self.add_pipe(base, fd, fd_num, mode, st.st_dev, st.st_ino)
            return
        mode_bits = st.st_mode
        typ = file_type(mode_bits)
        deleted = target.endswith(b" (deleted)") and target.startswith(b"/")
        if typ in ("CHR", "BLK"):
            device, size = self.devstr(st.st_rdev), None
        else:
            device = self.devstr(st.st_dev)
            size = st.st_size if typ in ("REG", "DIR") else None
        if typ == "FIFO" and pos is None:
            pos = 0
        if fd == "txt":
            self._exe[base[0]] = (device, st.st_ino)
        self._add(base, fd, fd_num, mode, typ, device, size, pos, st.st_ino, target, deleted)

    def add_pipe(self, base: tuple, fd: str, fd_num, mode, dev: int, inode: int) -> None:
        self.rows.append((base[0], base[1], fd, fd_num, mode, "FIFO", self.devstr(dev), None, 0, inode, None,
                          "pipe", None, False))

    def add_socket(self, base: tuple, fd: str, mode, inode: int, fdpath: str) -> None:
        r = [base[0], base[1], fd, int(fd), mode, None, None, None, 0, inode, None, "", None, False]
        self.sockets.append((r, fdpath))
        self.rows.append(r)
        if not self.socket_pids or self.socket_pids[-1] != base[0]:
            self.socket_pids.append(base[0])

    def exe_key(self, pid: int):
        return self._exe.get(pid)

    def drop(self, pid: int) -> None:
        """Forget the rows of the process being read (it vanished): they are the last ones."""
        rows = self.rows
        while rows and rows[-1][_PID] == pid:
            if type(rows.pop()) is list:  # a socket row: the last one in self.sockets
                self.sockets.pop()
        if self.socket_pids and self.socket_pids[-1] == pid:
            self.socket_pids.pop()

    def flush(self, force: bool = False) -> None:
        """Move the rows so far into Arrow columns when there are chunk of them (or force); call
        it between processes (drop() only takes back rows of the process being read)."""
        rows = self.rows
        if self._types is None or not rows or not (force or (self.chunk and len(rows) >= self.chunk)):
            return
        plain = []
        for r in rows:
            if type(r) is list:
                self._sock_rows.append(r)
            else:
                plain.append(r)
        self.rows = []
        self._batches.append(self._batch(plain))

    def _batch(self, rows: list):
        import pyarrow as pa
        types = self._types
        cols = list(zip(*rows)) if rows else [()] * len(FIELDS)
        return pa.RecordBatch.from_arrays([to_arrow(cols[i], types[f]) for i, f in enumerate(FIELDS)],
                                          names=list(FIELDS))

    def to_table(self, schema, common: dict):
        """All rows as an Arrow table of schema: the rows in the order they were added, socket rows
        after the others (a column in common has one value for every row). Call after resolve();
        the rows are let go."""
        import pyarrow as pa
        if self._types is None:
            self._types = {f.name: f.type for f in schema}
        self.flush(force=True)
        socks = self._sock_rows
        batches = self._batches + ([self._batch(socks)] if socks else [])
        # Socket rows come last, not back in their places: readers sort (compaction sorts by pid,
        # start, fd), and putting them back took a take() over the whole table, whose import of
        # pyarrow.compute alone cost a one-shot snapshot 70 ms.
        t = pa.Table.from_batches(batches or [self._batch([])])
        n = t.num_rows
        self._batches, self._sock_rows, self.rows, self.sockets = [], [], [], []
        mounts = self.mounts.arrow_column(t) if self.mounts is not None and n else None
        cols = []
        for f in schema:
            if f.name in common:
                cols.append(pa.repeat(pa.scalar(common[f.name], f.type), n))
            elif f.name == "mount_point" and mounts is not None:
                cols.append(mounts.cast(f.type))
            elif f.name in t.column_names:
                cols.append(t.column(f.name))
            else:
                cols.append(pa.nulls(n, f.type))
        return pa.Table.from_arrays(cols, schema=schema)

    def resolve(self, sockets: "SocketIndex") -> "FileRows":
        """Give each socket row lsof's TYPE, DEVICE and NAME from the socket tables."""
        for r, path in self.sockets:
            s = sockets.by_inode.get(r[_INODE])
            if s is None:
                # A socket of a family with no /proc/net table (or not bound
                # yet): lsof's 'sock' row, named by its protocol.
                r[_TYPE] = "sock"
                try:
                    r[_DEVICE] = self.devstr(os.stat(path).st_dev)
                except OSError:
                    pass
                try:
                    r[_NAME] = "protocol: " + os.getxattr(path, "system.sockprotoname").decode("ascii", "replace").rstrip("\0")
                except OSError:
                    r[_NAME] = "socket"
                continue
            r[_TYPE], r[_DEVICE], r[_PROTO], r[_NAME], raw = s[0]
            if raw is not None:
                r[_RAW] = raw
        return self


class SocketIndex:
    def __init__(self):
        self.by_inode: dict[int, dict] = {}
        self.unowned: list[dict] = []  # inode-0 sockets (TIME_WAIT, …)
        self.denied = 0

    def _add_records(self, records: list, ns, only: set | None = None) -> None:
        """(resolution, socket row) pairs, as inet_records and unix_records give them (or a parsed
        dict, for a line whose lossy text only Python makes)."""
        unowned, by_inode = self.unowned, self.by_inode
        for rec in records:
            if type(rec) is dict:
                rec["netns"] = ns
                rec = (_resolution(rec), _socket_row(rec))
            inode = rec[1][0]
            if only is not None and inode not in only:
                continue  # a line _line_finder let through on another column's digits
            if inode == 0:
                unowned.append(rec)
            elif inode not in by_inode:
                by_inode[inode] = rec

    def _add(self, rows: list[dict], ns, only: set | None = None) -> None:
        # Each socket is kept as two tuples, what its descriptors' rows get (resolve) and its
        # sockets row (rows): not as the parsed dict, five times their size at tens of thousands.
        for s in rows:
            if only is not None and s["inode"] not in only:
                continue  # a line _line_finder let through on another column's digits
            s["netns"] = ns
            rec = (_resolution(s), _socket_row(s))
            if s["inode"] == 0:
                self.unowned.append(rec)
            else:
                self.by_inode.setdefault(s["inode"], rec)

    def read_namespace(self, fs: ProcFS, parts: tuple, ns, native=None, only: set | None = None,
                       protos: set | None = None) -> None:
        """Every socket table of a network namespace; with ONLY (inodes), just those sockets, from
        the tables of their PROTOS (sockprotoname values; None: every table): `lsof -p PID`
        needs a few lines of tables that can hold tens of thousands."""
        find = _line_finder(only) if only is not None and native is None else None
        tables = _tables_of(only, protos) if only is not None else None

        def read(name):
            try:
                data = fs.read(*parts, name)
                if only is None or not data:
                    return data
                if native is not None:
                    return native.socket_lines(data, _INODE_COLUMN[name], only)
                return find(data)
            except Denied:
                self.denied += 1
            except Gone:
                pass
            return None

        records = inet_records if native is None else native.inet_records
        for name, proto, v6 in P.NET_TABLES:
            if tables is not None and name not in tables:
                continue
            data = read(name)
            if data:
                self._add_records(records(data, proto, v6, ns), ns, only)
        if tables is None or "unix" in tables:
            data = read("unix")
            if data:
                try:
                    self._add_records((unix_records if native is None else native.unix_records)(data, ns), ns, only)
                except ValueError:
                    pass
        for name, parser in (("netlink", P.parse_netlink), ("packet", P.parse_packet)):
            if tables is not None and name not in tables:
                continue
            data = read(name)
            if data:
                try:
                    self._add(parser(data), ns, only)
                except ValueError:
                    pass

    def rows(self, files: FileRows) -> dict[str, list]:
        """The sockets table as columns (SOCKET_FIELDS; boot_id is added by the caller): one row per
        (socket, owning descriptor), and one with no owner for a socket nobody holds."""
        owners: dict[int, list] = {}
        for r, _ in files.sockets:
            owners.setdefault(r[_INODE], []).append((r[_PID], r[_FDNUM], r[_START]))
        out = []
        nobody = (None, None, None)
        for _, base in list(self.by_inode.values()) + self.unowned:
            holders = owners.get(base[0]) if base[0] else None
            if holders:
                for h in holders:
                    out.append(h + base)
            else:
                out.append(nobody + base)
        if not out:
            return {f: [] for f in SOCKET_FIELDS}
        return dict(zip(SOCKET_FIELDS, (list(c) for c in zip(*out))))


SOCKET_FIELDS = ("pid", "fd", "start_time", "inode", "netns", "family", "proto", "sock_type", "local_addr",
                 "local_port", "remote_addr", "remote_port", "state", "rx_queue", "tx_queue", "uid", "unix_path",
                 "unix_path_raw")


# The socket table of each protocol name the kernel gives a socket (its system.sockprotoname).
_PROTO_TABLE = {"TCP": "tcp", "TCPv6": "tcp6", "UDP": "udp", "UDPv6": "udp6", "UDPLITE": "udplite",
                "UDPLITEv6": "udplite6", "RAW": "raw", "RAWv6": "raw6", "UNIX": "unix", "NETLINK": "netlink",
                "PACKET": "packet"}


# Where the inode stands in each table's lines (the parsers' field numbers).
_INODE_COLUMN = {**{name: 9 for name, _, _ in P.NET_TABLES}, "unix": 6, "netlink": 9, "packet": 8}


def _tables_of(only: set, protos: set | None) -> set | None:
    """The tables that can hold these sockets: None (all) when a protocol is unknown."""
    if protos is None or not protos <= _PROTO_TABLE.keys():
        return None
    return {_PROTO_TABLE[p] for p in protos}


def _line_finder(inodes: set):
    """A function keeping, of a /proc/net table, its header line and the lines where one of
    these inode numbers stands as a word followed by a blank or the line's end (bytes.find per
    inode: a few scans of C speed, not a parse per line)."""
    needles = [(b" %d " % i, b" %d\n" % i) for i in sorted(inodes)]

    def find(data: bytes) -> bytes:
        head = data.find(b"\n") + 1
        starts = set()
        for needle in (n for pair in needles for n in pair):
            at = data.find(needle, head)
            while at >= 0:
                starts.add(data.rfind(b"\n", 0, at + 1) + 1)
                at = data.find(needle, at + 1)
        lines = [data[:head]]
        for start in sorted(starts):
            end = data.find(b"\n", start)
            lines.append(data[start:end + 1] if end >= 0 else data[start:] + b"\n")
        return b"".join(lines)
    return find


def inet_records(data: bytes, proto: str, v6: bool, ns) -> list[tuple]:
    """(resolution, socket row) of each socket of a /proc/net/{tcp,udp,udplite,raw}[6] table
    in namespace ns (recorder/source/_native.c: inet_records makes the same tuples without the dicts)."""
    out = []
    for s in P.parse_inet(data, proto, v6):
        s["netns"] = ns
        out.append((_resolution(s), _socket_row(s)))
    return out


def unix_records(data: bytes, ns) -> list[tuple]:
    """(resolution, socket row) of each socket of /proc/net/unix in namespace ns
    (recorder/source/_native.c: unix_records)."""
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
    if fam in ("IPv4", "IPv6") and s["proto"] == "RAW":
        typ = "raw" if fam == "IPv4" else "raw6"
    else:
        typ = fam
        if fam in ("IPv4", "IPv6", "pack"):
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
