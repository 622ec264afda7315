"""The open_files table: lsof's rows for each process's descriptors.

:func:`process_files` adds one process's rows (cwd, rtd, txt, mem, the numbered
fds) to a :class:`FileRows` during the collector's process pass; :func:`finish`
then resolves the socket descriptors against the socket tables
(recorder/collect/sockets.py) and gives the sockets table too. Mapped files' rows
are kept across snapshots in a :class:`MapsCache`. :func:`live_files` is the same
for a live one-shot command, without Arrow.
"""

from __future__ import annotations

import os
import stat
from array import array
import time

from recorder.collect.sockets import SocketIndex, SocketsTable, proto_name, read_tables
from recorder.source import procfs as P
from recorder.source.procfs import Denied, Gone, ProcFS
from recorder.collect.tables import arrow_columns, micros, to_arrow


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
_PID, _TYPE, _DEVICE, _NAME = (FIELDS.index(f) for f in ("pid", "type", "device", "name"))

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


class FileRows:
    """One snapshot's open_files rows, but for sockets, which are kept as columns (pid, start, fd,
    inode, mode: no object per descriptor) until :meth:`resolve` gives them what the socket tables
    say. With the C module (:meth:`use_native`) the rows are Arrow column buffers in a
    recorder/source/_native.c Files, which the C loops fill with no Python object per row;
    without it, tuples in FIELDS order (not dicts: a snapshot has tens of thousands of
    descriptors)."""

    def __init__(self, chunk: int | None = None, schema=None, mounts: Mounts | None = None):
        self.rows: list = []
        self.gone = 0
        self.denied = 0
        self.socket_pids: list[int] = []
        # The socket descriptors, a column each; the start_time and the fd folder are the
        # process's one object, referenced from each of its sockets.
        self._sk_pid = array("q")
        self._sk_inode = array("Q")
        self._sk_start: list = []
        self._sk_fd: list[str] = []
        self._sk_mode: list = []
        self._sk_dir: list[str] = []
        self._sk_resolved: list[list] | None = None  # type, device, proto, name, name_raw: resolve()
        # With chunk (and the table's Arrow schema), rows become Arrow columns every chunk rows
        # (flush(), between processes), so a snapshot never holds all its rows as Python tuples;
        # to_table() puts the socket rows last.
        self.chunk = chunk
        self._types = {f.name: f.type for f in schema} if schema is not None else None
        self._batches: list = []
        self._exe: dict[int, tuple[str, int]] = {}
        self._devs: dict[int, str] = {}
        self.shared_stat: dict[bytes, object] = {}  # SHARED_ANON name, or b"pipe" -> a stat of one
        self.native_shared: dict[str, tuple] = {}  # the same for recorder/source/_native.c: (dev, size, ino)
        self.mounts = mounts                       # the mount table, for each row's mount_point
        self.native = None                         # the C module's Files (use_native), or None
        self._base = None                          # the process whose rows native takes now

    def use_native(self, native) -> None:
        """Keep the rows in a Files of the C module NATIVE from now on (call before any row): with
        the mount table when the rows become an Arrow table (a live command finds mount points
        itself, only for the rows it shows)."""
        if self.native is None:
            m = self.mounts
            self.native = native.Files(m.by_dev, m.of_path) if m is not None and self._types is not None \
                else native.Files()

    def begin(self, base: tuple) -> None:
        """The rows added to native next are those of process BASE (pid, start_time)."""
        if base != self._base:
            self._base = base
            self.native.begin(base[0], base[1], micros((base[1],))[0])

    def extend(self, base: tuple, rows, table=None) -> None:
        """Add rows kept from an earlier read (the mem rows of a MapsCache): tuples, or with the C
        module the indexes of their rows in TABLE (MapsCache.table)."""
        if table is not None:
            self.begin(base)
            self.native.extend(table, rows)
        else:
            self.rows.extend(rows)

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
        row = (base[0], base[1], fd, fd_num, mode, typ, device, size, pos, inode, proto, text, raw, deleted)
        if self.native is not None:
            self.begin(base)
            self.native.add(row)
        else:
            self.rows.append(row)

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
        self._add(base, fd, fd_num, mode, "FIFO", self.devstr(dev), None, 0, inode, "pipe", False)

    def add_sockets(self, base: tuple, fd_dir: str, sockets) -> None:
        """Socket descriptors of one process: (fd name, inode) pairs, each /proc/PID/fd/N opened
        read-write (mode u), FD_DIR the process's /proc/PID/fd/."""
        if not sockets:
            return
        pid, start = base
        for fd, inode in sockets:
            self._sk_pid.append(pid)
            self._sk_inode.append(inode)
            self._sk_start.append(start)
            self._sk_fd.append(fd)
            self._sk_mode.append("u")
            self._sk_dir.append(fd_dir)
        if not self.socket_pids or self.socket_pids[-1] != pid:
            self.socket_pids.append(pid)

    def add_socket(self, base: tuple, fd: str, mode, inode: int, fd_dir: str) -> None:
        self.add_sockets(base, fd_dir, ((fd, inode),))
        self._sk_mode[-1] = mode

    def exe_key(self, pid: int):
        """(device, inode) of the process's executable (its txt row), or None."""
        return self._exe.get(pid)

    def set_exe_key(self, pid: int, key: tuple) -> None:
        self._exe[pid] = key

    def drop(self, pid: int) -> None:
        """Forget the rows of the process being read (it vanished): they are the last ones."""
        if self.native is not None:
            self.native.drop(pid)
        rows = self.rows
        while rows and rows[-1][_PID] == pid:
            rows.pop()
        while self._sk_pid and self._sk_pid[-1] == pid:
            for col in (self._sk_pid, self._sk_inode, self._sk_start, self._sk_fd, self._sk_mode, self._sk_dir):
                col.pop()
        if self.socket_pids and self.socket_pids[-1] == pid:
            self.socket_pids.pop()

    def flush(self, force: bool = False) -> None:
        """Move the rows so far into Arrow columns when there are chunk of them (or force); call
        it between processes (drop() only takes back rows of the process being read)."""
        native = self.native
        if native is not None and len(native) and (force or (self.chunk and len(native) >= self.chunk)):
            # into Arrow; for a live command (no schema), into tuples: never all rows twice
            if self._types is not None:
                self._batches.append(self._native_batch())
            else:
                self.rows.extend(native.rows(True))
            self._base = None
        rows = self.rows
        if self._types is None or not rows or not (force or (self.chunk and len(rows) >= self.chunk)):
            return
        self.rows = []
        self._batches.append(self._batch(list(zip(*rows))))

    def _batch(self, cols: list):
        """An Arrow batch of these columns (FIELDS order), with their mount_point when the mount
        table is known (made here, a lookup per distinct device, not with pyarrow.compute: its
        import alone would stay resident in the recorder)."""
        import pyarrow as pa
        types = self._types
        cols = cols or [()] * len(FIELDS)
        arrays = [to_arrow(cols[i], types[f]) for i, f in enumerate(FIELDS)]
        names = list(FIELDS)
        if self.mounts is not None:
            arrays.append(pa.array(self.mounts.column(cols[_TYPE], cols[_DEVICE], cols[_NAME]), types["mount_point"]))
            names.append("mount_point")
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def _native_batch(self):
        """The rows of native as an Arrow batch, its buffers copied into Arrow's memory pool (native
        is empty afterwards): the table then lives where Arrow's other tables do, which leaves the
        recorder's peak lower than arrays over the C module's own memory."""
        import pyarrow as pa

        def buf(b):
            m = memoryview(b)
            out = pa.allocate_buffer(m.nbytes)
            memoryview(out).cast("B")[:] = m
            return out
        n = len(self.native)
        names = list(FIELDS) + ["mount_point"]
        arrays = []
        for name, (valid, values, data) in zip(names, self.native.buffers()):
            bufs = [None if valid is None else buf(valid), buf(values)]
            if data is not None:
                bufs.append(buf(data))
            arrays.append(pa.Array.from_buffers(self._types[name], n, bufs))
        if self.mounts is None:
            arrays.pop()
            names.pop()
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def _socket_columns(self) -> list:
        """The socket rows as columns in FIELDS order (after resolve()); the socket columns are let go."""
        n = len(self._sk_pid)
        typ, device, proto, name, raw = self._sk_resolved or ([None] * n, [None] * n, [None] * n, [""] * n,
                                                              [None] * n)
        cols = [self._sk_pid.tolist(), self._sk_start, self._sk_fd, [int(f) for f in self._sk_fd], self._sk_mode,
                typ, device, [None] * n, [0] * n, self._sk_inode.tolist(), proto, name, raw, [False] * n]
        self._sk_pid, self._sk_inode = array("q"), array("Q")
        self._sk_start, self._sk_fd, self._sk_mode, self._sk_dir, self._sk_resolved = [], [], [], [], None
        return cols

    def to_table(self, schema, common: dict):
        """All rows as an Arrow table of schema: the rows in the order they were added, socket rows
        after the others (a column in common has one value for every row). Call after resolve();
        the rows are let go."""
        import pyarrow as pa
        if self._types is None:
            self._types = {f.name: f.type for f in schema}
        self.flush(force=True)
        batches = self._batches
        if self._sk_pid:
            batches.append(self._batch(self._socket_columns()))
        # Socket rows come last, not back in their places: readers sort (compaction sorts by pid,
        # start, fd), and a take() over the whole table would need pyarrow.compute at import.
        t = pa.Table.from_batches(batches or [self._batch([])])
        n = t.num_rows
        self._batches, self.rows = [], []
        cols = []
        for f in schema:
            if f.name in common:
                cols.append(pa.repeat(pa.scalar(common[f.name], f.type), n))
            elif f.name in t.column_names:
                cols.append(t.column(f.name))
            else:
                cols.append(pa.nulls(n, f.type))
        return pa.Table.from_arrays(cols, schema=schema)

    def merge_sockets(self) -> None:
        """Put the socket rows (resolved) after the others in rows, as tuples (what a live
        command reads)."""
        if self.native is not None:
            self.rows.extend(self.native.rows())
            self.native, self._base = None, None
        if self._sk_pid:
            self.rows.extend(zip(*self._socket_columns()))

    def resolve(self, sockets: SocketIndex) -> "FileRows":
        """Give each socket descriptor lsof's TYPE, DEVICE and NAME from the socket tables."""
        n = len(self._sk_pid)
        typ, device, proto, name, raw = ([None] * n for _ in range(5))
        resolution = sockets.resolution
        for i, inode in enumerate(self._sk_inode):
            s = resolution(inode)
            if s is None:
                # A socket of a family with no /proc/net table (or not bound
                # yet): lsof's 'sock' row, named by its protocol.
                path = self._sk_dir[i] + self._sk_fd[i]
                typ[i] = "sock"
                try:
                    device[i] = self.devstr(os.stat(path).st_dev)
                except OSError:
                    pass
                p = proto_name(path)
                name[i] = "socket" if p is None else "protocol: " + p
                continue
            typ[i], device[i], proto[i], name[i], raw[i] = s
        self._sk_resolved = [typ, device, proto, name, raw]
        return self

    def socket_owners(self):
        """(inode, pid, fd number, start_time) of each socket descriptor."""
        return zip(self._sk_inode, self._sk_pid, map(int, self._sk_fd), self._sk_start)

    def socket_inodes(self) -> set[int]:
        return set(self._sk_inode)

    def socket_paths(self) -> list[str]:
        """/proc/PID/fd/N of each socket descriptor."""
        return [d + f for d, f in zip(self._sk_dir, self._sk_fd)]


# Descriptor rows held as Python tuples before they become Arrow columns (FileRows.flush): a
# snapshot's peak memory grows with this, not with the host's count of descriptors.
FILE_CHUNK = 4096
# lsof's access mode by the permission bits of a /proc/PID/fd/N link (see procfs.mode_letter)
_MODES = {m: P.mode_letter(m) for m in (0, 0o200, 0o400, 0o600)}


def new_rows(fs: ProcFS) -> FileRows:
    """An empty FileRows for one snapshot, with the recorder's mount table now, moved into Arrow
    columns every FILE_CHUNK rows."""
    from recorder.schema import TABLES
    return FileRows(FILE_CHUNK, TABLES["open_files"].arrow_schema(), mounts(fs))


class MapsCache:
    """The mem rows of each process instance, kept across snapshots: mappings change rarely, so
    they are re-read only for a process instance not seen before or after REFRESH seconds, and
    kept only when the next descriptor snapshot is that close."""

    def __init__(self, refresh: float = 60.0):
        self.refresh = refresh
        self.rows: dict[tuple, tuple] = {}  # (pid, start_time) -> (monotonic time, mem rows)
        self.seen: set = set()              # the process instances of this snapshot
        self.sizes: dict = {}               # (device, inode) -> size, this snapshot's stats (C module)
        self.paths: dict = {}               # without the C module: path -> its (dev, inode) now, this snapshot's
        # With the C module, a process's mem rows are the indexes (int32 bytes) of their rows in
        # table, a Files holding each distinct mapped file's row once (a library mapped by every
        # process is one row); index: (device, inode, path, size) -> its row (see maps_rows).
        self.table = None
        self.index: dict = {}

    def native_table(self, native):
        """The table of mem rows (made now if need be)."""
        if self.table is None:
            self.table = native.Files()
            self.table.begin(0, None, None)
            self.index = {}
        return self.table

    def keeps(self, next_files_in: float | None) -> bool:
        return next_files_in is not None and next_files_in <= self.refresh

    def end_snapshot(self, next_files_in: float | None) -> None:
        """Forget the mappings of process instances that are gone; and all of them when the next
        descriptor snapshot is further away than refresh (they would be re-read anyway, and kept
        rows pin memory across the recorder's quiet time)."""
        if self.keeps(next_files_in):
            self.rows = {k: v for k, v in self.rows.items() if k in self.seen}
        else:
            self.rows = {}
        self.seen = set()
        self.sizes = {}
        self.paths = {}
        if self.table is not None:
            self._prune()

    def _prune(self) -> None:
        """Let go of the table rows no kept process uses, once they are most of it."""
        if not self.rows:
            self.table, self.index = None, {}
            return
        used = set()
        for _, ids in self.rows.values():
            used.update(array("i", ids))
        if len(self.table) <= 2 * len(used) + FILE_CHUNK:
            return
        table = type(self.table)()
        table.begin(0, None, None)
        old, new = self.table, {}
        for i in sorted(used):
            new[i] = len(table)
            table.extend(old, array("i", (i,)).tobytes())
        self.index = {k: new[v] for k, v in self.index.items() if v in new}
        self.rows = {k: (t, array("i", [new[i] for i in array("i", ids)]).tobytes())
                     for k, (t, ids) in self.rows.items()}
        self.table = table


class OpenFiles:
    """A snapshot's open_files rows with their sockets resolved, and its sockets table (None when
    not asked for)."""
    __slots__ = ("files", "gone", "denied", "sockets")

    def __init__(self, files: FileRows, sockets: SocketsTable | None):
        self.files = files
        self.gone = files.gone
        self.denied = files.denied
        self.sockets = sockets


def _stat(path: str):
    try:
        return os.stat(path)
    except OSError:
        return None


def mounts(fs: ProcFS) -> Mounts | None:
    """The recorder's mount table now (None where /proc/self/mountinfo cannot be read)."""
    try:
        data = fs.read("self", "mountinfo")
    except (Gone, Denied):
        return None
    return Mounts(data) if data else None


def finish(fs: ProcFS, native, files: FileRows | None, maps: MapsCache, want_sockets: bool,
           next_files_in: float | None) -> OpenFiles:
    """The open_files rows of a process pass (FILES) resolved against the socket tables of their
    network namespaces, read once per namespace here, and the sockets table when WANT_SOCKETS."""
    files = files if files is not None else FileRows(mounts=mounts(fs))
    index = read_tables(fs, native, files.socket_pids, owners=files.socket_owners() if want_sockets else None,
                        descriptors=files.socket_owners())
    # The sockets table's columns become Arrow arrays now, before the descriptors are resolved:
    # a busy host's sockets as Python lists are the snapshot's largest Python objects.
    table = SocketsTable(arrow_columns("sockets", index.columns()), index.denied) if want_sockets else None
    files.resolve(index)
    maps.end_snapshot(next_files_in)
    return OpenFiles(files, table)


def no_sockets() -> SocketsTable:
    """An empty sockets table."""
    return SocketsTable(SocketIndex(()).columns(), 0)


def live_files(fs: ProcFS, native, maps: MapsCache, pids, read_process, sockets_only: bool = False
               ) -> tuple[list[dict], FileRows, dict[str, list]]:
    """(process rows, descriptor rows, socket columns) of these pids (None: every process), each
    process read by READ_PROCESS(pid) -> (row, fd names or None), which raises Gone, Denied or
    ValueError for a process it cannot read (left out). sockets_only keeps, besides socket
    descriptors, only each process's cwd (lsof -i needs no more, and it spares a stat of every
    other descriptor on the host)."""
    files = FileRows(FILE_CHUNK, mounts=mounts(fs))
    procs = []
    for pid in sorted(set(pids)) if pids is not None else fs.pids():
        try:
            row, fds = read_process(pid)
            if sockets_only:
                sockets_of(fs, pid, row["start_time"], fds, files)
            else:
                row["denied"] = process_files(fs, native, maps, pid, row["start_time"], fds, row["denied"], files,
                                              None)
        except (Gone, Denied, ValueError):
            files.drop(pid)
            continue
        files.flush()
        procs.append(row)
    # Named processes: only their sockets' lines of their protocols' tables are parsed.
    only = protos = None
    if pids is not None:
        only = files.socket_inodes()
        names = [proto_name(p) for p in files.socket_paths()]
        protos = None if None in names else set(names)  # closed meanwhile, or no name: every table
    index = read_tables(fs, native, files.socket_pids, only, protos, files.socket_owners(),
                        files.socket_owners())
    files.resolve(index)
    files.merge_sockets()
    return procs, files, index.columns()


def sockets_of(fs: ProcFS, pid: int, start_time, fds: list[str] | None, out: FileRows) -> None:
    """A process's cwd row and its socket descriptors' rows (what lsof -i shows of it)."""
    base = (pid, start_time)
    try:
        out.add_path(base, "cwd", None, None, fs.readlink(pid, "cwd"), _stat(fs.path(pid, "cwd")))
    except Denied:
        out.add_denied(base, "cwd", None, fs.path(pid, "cwd"))
    fd_dir = fs.path(pid, "fd") + "/"
    for n in fds or ():
        p = fd_dir + n
        try:
            target = os.readlink(p)
            if target.startswith("socket:["):
                out.add_socket(base, n, _MODES[os.lstat(p).st_mode & 0o600], int(target[8:-1]), fd_dir)
        except OSError:
            continue


def process_files(fs: ProcFS, native, maps: MapsCache, pid: int, start_time, fds: list[str] | None,
                  denied: str | None, out: FileRows, next_files_in: float | None) -> str | None:
    """lsof's rows for one process, added to OUT: cwd, rtd, txt, mem, then the numbered fds (FDS,
    the names in /proc/PID/fd; None when they could not be listed). DENIED: the process row's
    refused sources; returns them with those refused here added. Raises Gone when the process
    vanished (its rows so far are then dropped by the caller: out.drop(pid))."""
    base = (pid, start_time)
    refused = denied.split(",") if denied else []
    if native is not None:
        out.use_native(native)
        out.begin(base)
        exe, links_refused, n_denied, gone = native.proc_links(out.native, os.fsencode(fs.path(pid, "")))
        out.denied += n_denied
        if gone:
            raise Gone(fs.path(pid))
        refused.extend(links_refused)
        if exe is not None:
            out.set_exe_key(pid, exe)
    for fd, link in (("cwd", "cwd"), ("rtd", "root"), ("txt", "exe")) if native is None else ():
        try:
            target = fs.readlink(pid, link)
        except Denied:
            out.add_denied(base, fd, None, fs.path(pid, link))
            if link != "exe":
                refused.append(link)
            continue
        except Gone:
            if not fs.exists(pid, "stat"):
                raise
            if link == "exe":  # kernel threads and zombies have none
                out.add_unknown(base, fd, fs.path(pid, link))
            continue
        out.add_path(base, fd, None, None, target, _stat(fs.path(pid, link)))
    _maps(fs, native, maps, pid, base, out, refused, next_files_in)
    if fds is not None and native is not None:
        out.begin(base)
        sockets, gone, n_denied = native.fd_rows(
            out.native, os.fsencode(fs.path(pid, "fd") + "/"), os.fsencode(fs.path(pid, "fdinfo") + "/"),
            sorted(fds, key=int), out.native_shared)
        out.add_sockets(base, fs.path(pid, "fd") + "/", sockets)
        out.gone += gone
        out.denied += n_denied
    elif fds is not None:
        _fd_rows(fs, pid, base, fds, out)
    return ",".join(dict.fromkeys(refused)) if refused else None


def _fd_rows(fs: ProcFS, pid: int, base: tuple, fds: list[str], out: FileRows) -> None:
    """The rows of a process's numbered descriptors without the C module: what no library offers
    (pipes, anonymous inodes, devices, sockets by inode) from readlink and stat here, errors mapped
    as ProcFS would map them; regular files' offset and access mode from psutil's open_files (C's
    fd_rows is the one parser of fdinfo). A device's offset is then NULL, its mode the link's."""
    fd_dir = fs.path(pid, "fd") + "/"
    info_dir = fs.path(pid, "fdinfo") + "/"
    files = None  # fd number -> (offset, mode) of the regular files, asked once, when one is met
    readlink, lstat, stat_ = os.readlink, os.lstat, os.stat
    S_ISREG, S_ISCHR, S_ISBLK = stat.S_ISREG, stat.S_ISCHR, stat.S_ISBLK
    modes = _MODES
    shared = out.shared_stat
    # Per descriptor: readlink; then a path gets stat, and psutil's offset and access mode when
    # it is a regular file psutil lists; anything else, the lstat of the link for its access
    # mode; sockets, pipes and shared anonymous inodes get no stat of their own.
    for n in sorted(fds, key=int):
        p = fd_dir + n
        try:
            target = readlink(p.encode("utf-8", "surrogateescape"))
            if target[:1] == b"/":
                st = stat_(p)
                got = None
                if S_ISREG(st.st_mode) or S_ISCHR(st.st_mode) or S_ISBLK(st.st_mode):
                    # a descriptor whose fdinfo is gone was closed meanwhile (C reads it here)
                    stat_(info_dir + n)
                if S_ISREG(st.st_mode):
                    if files is None:
                        files = psutil_open_files(fs, pid)
                    got = files.get(int(n))
                pos, mode = got if got is not None else (None, modes[lstat(p).st_mode & 0o600])
                out.add_path(base, n, mode, pos, target, st)
                continue
            if target[:8] == b"socket:[" and target[-1:] == b"]" and target[8:-1].isdigit():
                # Every socket's file is opened O_RDWR (sock_alloc_file): its mode is
                # always u, no lstat needed.
                out.add_socket(base, n, "u", int(target[8:-1]), fd_dir)
                continue
            mode = modes[lstat(p).st_mode & 0o600]
        except PermissionError:
            out.add_denied(base, n, int(n), p)
            continue
        except OSError:
            out.gone += 1  # closed while we looked
            continue
        head = target[:6]
        if head == b"pipe:[" and target[-1:] == b"]" and target[6:-1].isdigit():
            # Every pipe lives on pipefs: its inode is in the link, its device is the
            # same for all, so one stat per snapshot serves every pipe.
            st = shared.get(b"pipe")
            if st is None:
                try:
                    st = shared[b"pipe"] = stat_(p)
                except OSError:
                    out.gone += 1
                    continue
            out.add_pipe(base, n, int(n), mode, st.st_dev, int(target[6:-1]))
            continue
        elif head == b"anon_i" and target in SHARED_ANON:
            st = shared.get(target)
            if st is None:
                try:
                    st = shared[target] = stat_(p)
                except OSError:
                    out.gone += 1
                    continue
            out.add_path(base, n, mode, None, target, st)
            continue
        try:
            st = stat_(p)
        except OSError:
            out.gone += 1
            continue
        out.add_path(base, n, mode, None, target, st)


_ACCESS = {os.O_RDONLY: "r", os.O_WRONLY: "w", os.O_RDWR: "u"}  # lsof's letters


def psutil_open_files(fs: ProcFS, pid: int) -> dict[int, tuple[int, str | None]]:
    """fd number -> (offset, lsof's access mode) of the regular files psutil lists for PID, read
    under FS's root; {} when psutil cannot read them (the rows then have no offset). An O_PATH
    descriptor has no access mode."""
    import psutil  # only without the C module
    saved = psutil.PROCFS_PATH
    psutil.PROCFS_PATH = fs.root
    try:
        return {f.fd: (f.position, None if f.flags & os.O_PATH else _ACCESS.get(f.flags & os.O_ACCMODE))
                for f in psutil.Process(pid).open_files()}
    except (psutil.Error, OSError, ValueError, IndexError):  # IndexError: an fdinfo without pos
        return {}
    finally:
        psutil.PROCFS_PATH = saved


def _maps(fs: ProcFS, native, maps: MapsCache, pid: int, base: tuple, out: FileRows, denied: list[str],
          next_files_in: float | None) -> None:
    """mem rows: one per distinct mapped file other than the executable (from MAPS, the cache, for
    a process instance read less than maps.refresh seconds ago)."""
    key = base
    now = time.monotonic()
    cached = maps.rows.get(key)
    if cached is None or now - cached[0] > maps.refresh:
        try:
            data = fs.read(pid, "maps") if native is not None else None
        except Denied:
            denied.append("maps")
            return
        except Gone:
            if not fs.exists(pid, "stat"):
                raise
            return
        # The rows themselves are kept: they depend on nothing but the process instance.
        exe = out.exe_key(pid)
        if native is not None:
            rows = native.maps_rows(maps.native_table(native), maps.index, data, exe, maps.sizes,
                                    fs.path(pid, "map_files"))
        else:
            rows = _maps_rows(fs, pid, base, exe, maps.paths, out.devstr, denied)
        cached = (now, rows)
        if maps.keeps(next_files_in):
            maps.rows[key] = cached
    maps.seen.add(key)
    out.extend(base, cached[1], maps.table if native is not None else None)


def _maps_rows(fs: ProcFS, pid: int, base: tuple, exe, paths: dict, devstr, denied: list[str]) -> list[tuple]:
    """The mem rows of a process without the C module (C's maps_rows is the one parser of the maps
    text): its mapped files as psutil's memory_maps lists them, read under FS's root, and each
    file's device, inode and size from a stat of /proc/PID/map_files/<range> (NULL where that
    fails). psutil drops the kernel's ' (deleted)': a mapped file is DEL when its path now names
    no file, or another one than the stat of its mapping (PATHS: this snapshot's stats of the
    paths). Raises Gone when the process vanished; adds "maps" to DENIED when it is refused."""
    import psutil  # only without the C module
    saved = psutil.PROCFS_PATH
    psutil.PROCFS_PATH = fs.root
    try:
        regions = psutil.Process(pid).memory_maps(grouped=False)
    except (psutil.Error, OSError) as e:
        e = P.translate(e)
        if isinstance(e, Denied):
            denied.append("maps")
        elif isinstance(e, Gone) and not fs.exists(pid, "stat"):
            raise e
        return []
    except ValueError:  # a line psutil cannot read: the kernel does not write one
        return []
    finally:
        psutil.PROCFS_PATH = saved
    rows = []
    seen = set()
    pid_, start = base
    map_files = fs.path(pid, "map_files") + "/"
    for region in regions:
        path = region.path
        if path[:1] != "/":  # anonymous, [heap], [stack], [vdso], ...
            continue
        st = _stat(map_files + region.addr)
        k = (st.st_dev, st.st_ino) if st is not None else path
        if k in seen:
            continue
        seen.add(k)
        device = devstr(st.st_dev) if st is not None else None
        if st is not None and (device, st.st_ino) == exe:
            continue
        # Libraries are mapped by most processes: stat each path once per snapshot.
        now = paths.get(path, False)
        if now is False:
            s = _stat(path)
            now = paths[path] = (s.st_dev, s.st_ino) if s is not None else None
        deleted = now is None or (st is not None and now != k)
        raw = os.fsencode(path)
        try:
            text, raw = raw.decode("utf-8"), None
        except UnicodeDecodeError:
            text, raw = P.split_text(raw)
        rows.append((pid_, start, "DEL" if deleted else "mem", None, None, "REG", device,
                     None if deleted or st is None else st.st_size, None, st.st_ino if st is not None else None,
                     None, text, raw, deleted))
    return rows
